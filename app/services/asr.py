"""Whisper on CTranslate2 (faster-whisper): language identification and batched decoding.

The decoding is WhisperX's batched inference (``whisperx.asr.FasterWhisperPipeline``) —
same log-Mel features, same prompt, same beam search options, so the same text — written
out here instead of imported, for three reasons: WhisperX's version lives in a module that
imports ``transformers`` (seconds of start-up for a ``Pipeline`` base class we do not need);
it mutates ``self.tokenizer``/``self.options`` on the shared object per call, so concurrent
requests would decode with each other's language or prompt (whisperX issue #1171) — here the
tokenizer and options are per call; and each step can be timed.

When no wav2vec2 aligner is available, word times come from Whisper itself: the decoded text
of each window is force-aligned to the audio with the model's cross-attention alignment heads
(the dynamic-time-warping method behind ``word_timestamps=True`` in faster-whisper).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from app.errors import GpuOutOfMemory
from app.services.audio import SAMPLE_RATE
from app.services.model_sources import WhisperSource
from app.services.vad import CHUNK_SECONDS, SpeechChunk

logger = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")

_PROMPT_TOKENS = 2  # so MAX_NEW_TOKENS=128 gives max_length 130, as in the GPU baselines
_CHUNK_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE


@dataclass(frozen=True)
class DecodingOptions:
    """WhisperX's defaults for batched decoding (``whisperx.asr.load_model``)."""

    beam_size: int = 5
    patience: float = 1.0
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    suppress_blank: bool = True
    suppress_tokens: tuple[int, ...] = (-1,)
    prepend_punctuations: str = "\"'“¿([{-"
    append_punctuations: str = "\"'.。,，!！?？:：”)]}、"


@dataclass
class Word:
    word: str
    start: float
    end: float
    score: float | None = None
    speaker: str | None = None


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    avg_logprob: float | None = None
    speaker: str | None = None


class WhisperEngine:
    """One loaded Whisper model; safe to call from several threads (one decode at a time)."""

    def __init__(self, model: Any, source: WhisperSource, options: DecodingOptions | None = None) -> None:
        self._model = model
        self.source = source
        self.options = options or DecodingOptions()
        self.multilingual: bool = bool(model.model.is_multilingual)
        self.languages: frozenset[str] = frozenset(model.supported_languages)
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        source: WhisperSource,
        *,
        device: str,
        compute_type: str,
        cpu_threads: int,
        download_root: str,
        hf_token: str | None,
        max_new_tokens: int | None = None,
    ) -> WhisperEngine:
        from faster_whisper import WhisperModel

        model = WhisperModel(
            source.location,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            download_root=download_root,
            use_auth_token=hf_token,
        )
        if max_new_tokens is not None:
            # Decoding stops at model.max_length tokens per window, prompt included.
            model.max_length = max_new_tokens + _PROMPT_TOKENS
        return cls(model, source)

    def detect_language(self, audio: np.ndarray, chunks: list[SpeechChunk]) -> tuple[str, float]:
        """Identify the language on up to 30 s of the detected speech (not on leading silence)."""
        if not self.multilingual:
            return "en", 1.0
        speech = np.concatenate([_slice(audio, c) for c in chunks])[:_CHUNK_SAMPLES]
        features = self._features(speech)
        with self._lock:
            results = self._model.model.detect_language(self._encode(features[None]))
        token, probability = results[0][0]
        return token[2:-2], float(probability)

    def transcribe(
        self,
        audio: np.ndarray,
        chunks: list[SpeechChunk],
        *,
        language: str,
        task: str,
        initial_prompt: str | None,
        batch_size: int,
    ) -> list[Segment]:
        """Decode every speech chunk into one segment of text (no word times yet)."""
        tokenizer = self._tokenizer(language, task)
        prompt = self._model.get_prompt(
            tokenizer,
            tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt else [],
            without_timestamps=True,
        )

        def decode(batch: list[SpeechChunk]) -> list[Segment]:
            features = np.stack([self._features(_slice(audio, chunk)) for chunk in batch])
            with self._lock:
                results = self._generate(features, prompt)
            return [
                Segment(
                    start=round(chunk.start, 3),
                    end=round(chunk.end, 3),
                    text=tokenizer.decode([t for t in result.sequences_ids[0] if t < tokenizer.eot]),
                    avg_logprob=_avg_logprob(
                        result.scores[0], len(result.sequences_ids[0]), self.options.length_penalty
                    ),
                )
                for chunk, result in zip(batch, results, strict=True)
            ]

        segments = run_in_batches(chunks, batch_size, decode)
        return [s for s in segments if s.text.strip()]

    def time_words(
        self, audio: np.ndarray, segments: list[Segment], *, language: str, task: str, batch_size: int
    ) -> list[Segment]:
        """Whisper's own word times for decoded segments, split into sentence-sized segments."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.transcribe import merge_punctuations

        tokenizer = self._tokenizer(language, task)

        def align(batch: list[Segment]) -> list[Segment]:
            features, num_frames, tokens = [], [], []
            for seg in batch:
                mel = self._model.feature_extractor(_slice(audio, seg))[..., :-1]
                num_frames.append(min(mel.shape[-1], self._model.feature_extractor.nb_max_frames))
                features.append(pad_or_trim(mel))
                tokens.append([t for t in tokenizer.encode(seg.text) if t < tokenizer.eot])
            with self._lock:
                encoded = self._encode(np.stack(features))
                alignments = self._model.find_alignment(tokenizer, tokens, encoded, num_frames)
            timed: list[Segment] = []
            for seg, alignment in zip(batch, alignments, strict=True):
                merge_punctuations(alignment, self.options.prepend_punctuations, self.options.append_punctuations)
                timed.extend(_split_sentences(seg, alignment))
            return timed

        return run_in_batches(segments, batch_size, align)

    def _tokenizer(self, language: str, task: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(self._model.hf_tokenizer, self.multilingual, task=task, language=language)

    def _features(self, audio: np.ndarray) -> np.ndarray:
        """WhisperX's log-Mel features of one window, zero-padded to 30 s."""
        from whisperx.audio import log_mel_spectrogram

        n_mels = int(self._model.feat_kwargs.get("feature_size") or 80)
        # Negative padding crops, as in WhisperX: a window is exactly 3000 frames.
        padding = _CHUNK_SAMPLES - audio.shape[0]
        features: np.ndarray = log_mel_spectrogram(audio, n_mels=n_mels, padding=padding).numpy()
        return features

    def _encode(self, features: np.ndarray) -> Any:
        from faster_whisper.transcribe import get_ctranslate2_storage

        # As in WhisperX: across several GPUs the next job may run elsewhere, so move it to the CPU.
        model = self._model.model
        to_cpu = model.device == "cuda" and len(model.device_index) > 1
        return model.encode(get_ctranslate2_storage(features), to_cpu=to_cpu)

    def _generate(self, features: np.ndarray, prompt: list[int]) -> Any:
        o = self.options
        return self._model.model.generate(
            self._encode(features),
            [prompt] * features.shape[0],
            beam_size=o.beam_size,
            patience=o.patience,
            length_penalty=o.length_penalty,
            max_length=self._model.max_length,
            suppress_blank=o.suppress_blank,
            suppress_tokens=list(o.suppress_tokens),
            no_repeat_ngram_size=o.no_repeat_ngram_size,
            repetition_penalty=o.repetition_penalty,
            return_scores=True,
        )


def run_in_batches(items: list[In], batch_size: int, run: Callable[[list[In]], list[Out]]) -> list[Out]:
    """``run`` over ``items`` in batches, halving the batch after a GPU out-of-memory error.

    A long request, a large batch size or a neighbour's work can exhaust GPU memory; the
    same windows then go through in smaller batches (down to one) instead of failing the
    request. Only when a single window does not fit is the request refused, with a 503.
    """
    results: list[Out] = []
    size, first = batch_size, 0
    while first < len(items):
        batch = items[first : first + size]
        try:
            results.extend(run(batch))
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            if size == 1:
                raise GpuOutOfMemory(
                    "The GPU ran out of memory even for a single 30 s window; retry shortly.",
                    headers={"Retry-After": "10"},
                ) from exc
            size = max(1, size // 2)
            logger.warning("GPU out of memory with batch %d; retrying with batch %d", len(batch), size)
            _release_cached_gpu_memory()
            continue
        first += len(batch)
    return results


def is_out_of_memory(exc: BaseException) -> bool:
    # CTranslate2 raises RuntimeError("... CUDA failed with error out of memory");
    # torch raises torch.cuda.OutOfMemoryError, whose message also says so.
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


def _release_cached_gpu_memory() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _avg_logprob(score: float, length: int, length_penalty: float) -> float:
    # CTranslate2 returns the length-normalised score; WhisperX undoes it the same way.
    return float(score * (length**length_penalty) / (length + 1))


def _slice(audio: np.ndarray, span: SpeechChunk | Segment) -> np.ndarray:
    return audio[int(span.start * SAMPLE_RATE) : int(span.end * SAMPLE_RATE)]


_SENTENCE_END = (".", "?", "!", "。", "？", "！")


def _split_sentences(segment: Segment, alignment: list[dict[str, Any]]) -> list[Segment]:
    """Turn one 30 s chunk with Whisper word times into sentence-sized segments."""
    sentences: list[Segment] = []
    raw: list[str] = []
    words: list[Word] = []
    for timing in alignment:
        if not timing["word"].strip():
            continue
        raw.append(timing["word"])
        words.append(
            Word(
                word=timing["word"].strip(),
                start=round(segment.start + float(timing["start"]), 3),
                end=round(segment.start + float(timing["end"]), 3),
                score=round(float(timing["probability"]), 3),
            )
        )
        if timing["word"].rstrip().endswith(_SENTENCE_END):
            sentences.append(_sentence(raw, words, segment))
            raw, words = [], []
    if words:
        sentences.append(_sentence(raw, words, segment))
    return sentences or [segment]


def _sentence(raw: list[str], words: list[Word], parent: Segment) -> Segment:
    return Segment(
        start=words[0].start,
        end=words[-1].end,
        text="".join(raw).strip(),
        words=words,
        avg_logprob=parent.avg_logprob,
    )
