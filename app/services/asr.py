"""Whisper through WhisperX: voice activity detection, language identification, batched decoding.

The loop over VAD chunks is WhisperX's own (``FasterWhisperPipeline``), driven here step by
step so that (a) the language is identified on *speech* and comes back with its probability,
(b) the tokenizer and decoding options are set per request under a lock — WhisperX's
``transcribe`` mutates ``self.tokenizer``/``self.options`` on the shared object, so two
concurrent calls would decode with each other's language or prompt (whisperX issue #1171) —
and (c) each step can be timed.

When no wav2vec2 aligner is available, word times come from Whisper itself: the decoded text
of each chunk is force-aligned to the audio with the model's cross-attention alignment heads
(the dynamic-time-warping method behind ``word_timestamps=True`` in faster-whisper).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from app.services.audio import SAMPLE_RATE
from app.services.model_sources import WhisperSource

if TYPE_CHECKING:
    from whisperx.asr import FasterWhisperPipeline

logger = logging.getLogger(__name__)

CHUNK_SECONDS = 30
_PROMPT_TOKENS = 2  # so MAX_NEW_TOKENS=128 gives max_length 130, as in the GPU baselines
_CHUNK_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE


@dataclass(frozen=True)
class SpeechChunk:
    """Up to 30 s of audio that VAD found speech in, decoded as one Whisper window."""

    start: float
    end: float


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
    """One loaded Whisper model with its VAD; safe to call from several threads."""

    def __init__(self, pipeline: FasterWhisperPipeline, source: WhisperSource) -> None:
        self._pipeline = pipeline
        self._model = pipeline.model
        self._base_options = pipeline.options
        self._vad_params = dict(pipeline._vad_params)
        self.source = source
        self.multilingual: bool = bool(self._model.model.is_multilingual)
        self.languages: frozenset[str] = frozenset(self._model.supported_languages)
        # The VAD and the Whisper model are separate objects: a request can run VAD while
        # another decodes, but neither object is ever used by two requests at once.
        self._vad_lock = threading.Lock()
        self._model_lock = threading.Lock()

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
        import whisperx

        pipeline = whisperx.load_model(
            source.location,
            device,
            compute_type=compute_type,
            threads=cpu_threads,
            download_root=download_root,
            use_auth_token=hf_token,
            vad_method="pyannote",
        )
        if max_new_tokens is not None:
            # WhisperX decodes up to model.max_length tokens (prompt included) per window.
            pipeline.model.max_length = max_new_tokens + _PROMPT_TOKENS
        return cls(pipeline, source)

    # --- stages -------------------------------------------------------------------------

    def detect_speech(self, audio: np.ndarray) -> list[SpeechChunk]:
        vad = self._pipeline.vad_model
        with self._vad_lock:
            scores = vad({"waveform": vad.preprocess_audio(audio), "sample_rate": SAMPLE_RATE})
        merged = vad.merge_chunks(
            scores,
            CHUNK_SECONDS,
            onset=self._vad_params["vad_onset"],
            offset=self._vad_params["vad_offset"],
        )
        return [SpeechChunk(float(c["start"]), float(c["end"])) for c in merged]

    def detect_language(self, audio: np.ndarray, chunks: list[SpeechChunk]) -> tuple[str, float]:
        """Identify the language on up to 30 s of the detected speech (not on leading silence)."""
        if not self.multilingual:
            return "en", 1.0
        from whisperx.audio import log_mel_spectrogram

        speech = np.concatenate([_slice(audio, c) for c in chunks])[:_CHUNK_SAMPLES]
        features = log_mel_spectrogram(speech, n_mels=self._n_mels, padding=max(_CHUNK_SAMPLES - speech.shape[0], 0))
        with self._model_lock:
            encoded = self._model.encode(features.numpy())
            results = self._model.model.detect_language(encoded)
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
        options = replace(self._base_options, initial_prompt=initial_prompt or None)
        inputs = ({"inputs": _slice(audio, chunk)} for chunk in chunks)
        with self._model_lock:
            self._pipeline.tokenizer = tokenizer
            self._pipeline.options = options
            outputs = list(self._pipeline(inputs, batch_size=batch_size, num_workers=0))
        segments = [
            Segment(start=round(chunk.start, 3), end=round(chunk.end, 3), **_unbatch(out))
            for chunk, out in zip(chunks, outputs, strict=True)
        ]
        return [s for s in segments if s.text.strip()]

    def time_words(
        self, audio: np.ndarray, segments: list[Segment], *, language: str, task: str, batch_size: int
    ) -> list[Segment]:
        """Whisper's own word times for decoded segments, split into sentence-sized segments."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.transcribe import merge_punctuations

        tokenizer = self._tokenizer(language, task)
        timed: list[Segment] = []
        for first in range(0, len(segments), batch_size):
            batch = segments[first : first + batch_size]
            features, num_frames, tokens = [], [], []
            for seg in batch:
                mel = self._model.feature_extractor(_slice(audio, seg))[..., :-1]
                num_frames.append(min(mel.shape[-1], self._model.feature_extractor.nb_max_frames))
                features.append(pad_or_trim(mel))
                tokens.append([t for t in tokenizer.encode(seg.text) if t < tokenizer.eot])
            with self._model_lock:
                encoded = self._model.encode(np.stack(features))
                alignments = self._model.find_alignment(tokenizer, tokens, encoded, num_frames)
            for seg, alignment in zip(batch, alignments, strict=True):
                merge_punctuations(
                    alignment, self._base_options.prepend_punctuations, self._base_options.append_punctuations
                )
                timed.extend(_split_sentences(seg, alignment))
        return timed

    def _tokenizer(self, language: str, task: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(self._model.hf_tokenizer, self.multilingual, task=task, language=language)

    @property
    def _n_mels(self) -> int:
        return int(self._model.feat_kwargs.get("feature_size") or 80)


def _slice(audio: np.ndarray, span: SpeechChunk | Segment) -> np.ndarray:
    return audio[int(span.start * SAMPLE_RATE) : int(span.end * SAMPLE_RATE)]


def _unbatch(output: dict[str, Any]) -> dict[str, Any]:
    text, avg_logprob = output["text"], output["avg_logprob"]
    # WhisperX's pipeline yields lists when it runs unbatched and scalars when batched.
    if isinstance(text, list):
        text, avg_logprob = text[0], avg_logprob[0]
    return {"text": text, "avg_logprob": float(avg_logprob)}


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
