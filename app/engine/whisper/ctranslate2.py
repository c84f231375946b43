"""Whisper on CTranslate2 (faster-whisper): language identification and batched decoding.

The decoding is WhisperX's batched inference (``whisperx.asr.FasterWhisperPipeline``) —
same log-Mel features, same prompt, same beam search options, so the same text — written
out here instead of imported, for three reasons: WhisperX's version lives in a module that
imports ``transformers`` (seconds of start-up for a ``Pipeline`` base class we do not need);
it mutates ``self.tokenizer``/``self.options`` on the shared object per call, so concurrent
requests would decode with each other's language or prompt (whisperX issue #1171) — here the
tokenizer and prompt belong to each call; and each step can be timed.

Every model call goes through a ``BatchScheduler`` (app/engine/whisper/batching.py): the request's
thread computes the features, and the scheduler's one thread encodes and decodes them, in
batches shared with concurrent requests that use the same prompt. While one batch of a long
request is on the GPU, its thread prepares the next one.

When no wav2vec2 aligner is available, word times come from Whisper itself: the decoded text
of each window is force-aligned to the audio with the model's cross-attention alignment heads
(the dynamic-time-warping method behind ``word_timestamps=True`` in faster-whisper).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from app.control.cancellation import CancelToken
from app.control.progress import Progress
from app.engine.audio import SAMPLE_RATE
from app.engine.vad import CHUNK_SECONDS, SpeechChunk
from app.engine.whisper.batching import BatchScheduler, Job, Operation
from app.engine.whisper.sources import WhisperSource
from app.runtime.timing import StepTimer
from app.transcript import Segment, Word

logger = logging.getLogger(__name__)

Span = TypeVar("Span", SpeechChunk, Segment)  # a stretch of audio: a VAD chunk or a decoded segment
In = TypeVar("In")
Out = TypeVar("Out")

_PROMPT_TOKENS = 2  # so MAX_NEW_TOKENS=128 gives max_length 130, as in the GPU baselines
_CHUNK_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE
# Batches a request has prepared but not yet got back: one on the GPU, one ready behind it.
# More would only hold features in memory (1.5 MB per window for large-v3).
_BATCHES_AHEAD = 2


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


class WhisperEngine:
    """One loaded Whisper model; its calls are made by one scheduler thread, batched across requests."""

    def __init__(
        self,
        model: Any,
        source: WhisperSource,
        options: DecodingOptions | None = None,
        scheduler: BatchScheduler | None = None,
        model_path: Path | None = None,
    ) -> None:
        self._model = model
        self.source = source
        self.model_path = model_path  # the folder the weights were read from (the job cache's fingerprint)
        self.options = options or DecodingOptions()
        self.multilingual: bool = bool(model.model.is_multilingual)
        self.languages: frozenset[str] = frozenset(model.supported_languages)
        self.scheduler = scheduler or BatchScheduler("whisper")
        ct2 = model.model
        self.feature_device = f"cuda:{ct2.device_index[0]}" if ct2.device == "cuda" else "cpu"  # torch's log-Mel
        # Seconds inside model calls, by kind, for /health and the benchmarks. Only the
        # scheduler's threads add to it (summed over replicas).
        self.model_seconds = StepTimer({"encode": 0.0, "decode": 0.0, "align_words": 0.0, "detect_language": 0.0})

    @classmethod
    def load(
        cls,
        source: WhisperSource,
        *,
        device: str,
        compute_type: str,
        cpu_threads: int,
        download_root: str,
        replicas: int = 1,
        hf_token: str | None,
        max_new_tokens: int | None = None,
        scheduler: BatchScheduler | None = None,
    ) -> WhisperEngine:
        from faster_whisper import WhisperModel
        from faster_whisper.utils import download_model

        location = source.location
        if not os.path.isdir(location):  # a hub name: the cached snapshot (downloaded the first time)
            location = download_model(location, cache_dir=download_root, use_auth_token=hf_token)
        model = WhisperModel(
            location,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=replicas,  # CTranslate2 inter_threads: one replica per scheduler thread
            download_root=download_root,
            use_auth_token=hf_token,
        )
        if max_new_tokens is not None:
            # Decoding stops at model.max_length tokens per window, prompt included.
            model.max_length = max_new_tokens + _PROMPT_TOKENS
        return cls(model, source, scheduler=scheduler, model_path=Path(location))

    def detect_language(
        self, audio: np.ndarray, chunks: list[SpeechChunk], cancel: CancelToken | None = None
    ) -> tuple[str, float]:
        """Identify the language on up to 30 s of the detected speech (not on leading silence)."""
        if not self.multilingual:
            return "en", 1.0
        speech = np.concatenate([_slice(audio, c) for c in chunks])[:_CHUNK_SAMPLES]
        job = self.scheduler.submit(_DetectLanguage(self), [self._features(speech)], 1)
        try:
            [(language, probability)] = job.result(cancel)
        except BaseException:
            self.scheduler.cancel(job)
            raise
        return language, probability

    def transcribe(
        self,
        audio: np.ndarray,
        chunks: list[SpeechChunk],
        *,
        language: str,
        task: str,
        initial_prompt: str | None,
        batch_size: int,
        temperature: float = 0.0,
        timer: StepTimer | None = None,
        cancel: CancelToken | None = None,
        progress: Progress | None = None,
    ) -> list[Segment]:
        """Decode every speech chunk into one segment of text (no word times yet).

        ``temperature`` 0 is beam search (WhisperX's decoding); above 0, each window is sampled
        at that temperature. ``timer`` gets the seconds this thread spent computing features,
        under ``features``.
        """
        tokenizer = self._tokenizer(language, task)
        prompt = self._model.get_prompt(
            tokenizer,
            tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt else [],
            without_timestamps=True,
        )
        decoded = self._in_batches(
            _Decode(self, tuple(prompt), temperature),
            chunks,
            batch_size,
            lambda c: self._features(_slice(audio, c)),
            timer,
            cancel,
            progress,
        )
        segments = [
            Segment(
                start=round(chunk.start, 3),
                end=round(chunk.end, 3),
                text=tokenizer.decode([t for t in tokens if t < tokenizer.eot]),
                avg_logprob=_avg_logprob(score, len(tokens), self.options.length_penalty),
                no_speech_prob=round(no_speech_prob, 4),
            )
            for chunk, (tokens, score, no_speech_prob) in zip(chunks, decoded, strict=True)
        ]
        return [s for s in segments if s.text.strip()]

    def time_words(
        self,
        audio: np.ndarray,
        segments: list[Segment],
        *,
        language: str,
        task: str,
        batch_size: int,
        timer: StepTimer | None = None,
        cancel: CancelToken | None = None,
        progress: Progress | None = None,
    ) -> list[Segment]:
        """Whisper's own word times for decoded segments, split into sentence-sized segments."""
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.transcribe import merge_punctuations

        tokenizer = self._tokenizer(language, task)
        extractor = self._model.feature_extractor

        def prepare(segment: Segment) -> _AlignmentInput:
            mel = extractor(_slice(audio, segment))[..., :-1]
            return _AlignmentInput(
                features=pad_or_trim(mel),
                num_frames=min(mel.shape[-1], extractor.nb_max_frames),
                tokens=[t for t in tokenizer.encode(segment.text) if t < tokenizer.eot],
            )

        alignments = self._in_batches(
            _AlignWords(self, language, task), segments, batch_size, prepare, timer, cancel, progress
        )
        timed: list[Segment] = []
        for segment, alignment in zip(segments, alignments, strict=True):
            merge_punctuations(alignment, self.options.prepend_punctuations, self.options.append_punctuations)
            timed.extend(_split_sentences(segment, alignment))
        return timed

    def _in_batches(
        self,
        operation: Operation[In, Out],
        spans: list[Span],
        batch_size: int,
        prepare: Callable[[Span], In],
        timer: StepTimer | None,
        cancel: CancelToken | None = None,
        progress: Progress | None = None,
    ) -> list[Out]:
        """Prepare ``spans`` a batch at a time in this thread while the scheduler runs the batch before.

        A cancelled request stops at the next batch boundary; its queued batches are withdrawn.
        ``progress`` hears of each batch as it is handed to the scheduler (at most
        ``_BATCHES_AHEAD`` batches ahead of the finished ones), with the audio it reaches.
        """
        timer = timer or StepTimer()
        jobs: list[Job[In, Out]] = []
        try:
            for first in range(0, len(spans), batch_size):
                if cancel is not None:
                    cancel.check()
                if len(jobs) >= _BATCHES_AHEAD:
                    jobs[-_BATCHES_AHEAD].result(cancel)
                with timer("features"):
                    inputs = [prepare(span) for span in spans[first : first + batch_size]]
                jobs.append(self.scheduler.submit(operation, inputs, batch_size))
                if progress is not None:
                    done = first + len(inputs)
                    progress.advance(done / len(spans), spans[done - 1].end)
            return [output for job in jobs for output in job.result(cancel)]
        except BaseException:
            for job in jobs:
                self.scheduler.cancel(job)
            raise

    def text_tokens(self, texts: list[str], *, language: str, task: str) -> list[list[int]]:
        """Whisper's tokens for each text (segments', as OpenAI's verbose_json lists them)."""
        tokenizer = self._tokenizer(language, task)
        return [[t for t in tokenizer.encode(" " + text.strip()) if t < tokenizer.eot] for text in texts]

    def _tokenizer(self, language: str, task: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        return Tokenizer(self._model.hf_tokenizer, self.multilingual, task=task, language=language)

    def _features(self, audio: np.ndarray) -> np.ndarray:
        """WhisperX's log-Mel features of one window, zero-padded to 30 s, computed where Whisper runs.

        On a GPU this takes the STFT off the CPU: many request threads each running torch's
        multi-threaded CPU STFT at once starve the scheduler thread, whose decoder is bound by
        how fast one CPU core launches kernels (measured with bench/throughput.py).
        """
        from whisperx.audio import log_mel_spectrogram

        n_mels = int(self._model.feat_kwargs.get("feature_size") or 80)
        # Negative padding crops, as in WhisperX: a window is exactly 3000 frames.
        padding = _CHUNK_SAMPLES - audio.shape[0]
        mel = log_mel_spectrogram(audio, n_mels=n_mels, padding=padding, device=self.feature_device)
        features: np.ndarray = mel.cpu().numpy()
        return features

    def encode(self, features: np.ndarray) -> Any:
        from faster_whisper.transcribe import get_ctranslate2_storage

        # As in WhisperX: across several GPUs the next job may run elsewhere, so move it to the CPU.
        model = self._model.model
        to_cpu = model.device == "cuda" and len(model.device_index) > 1
        with self.model_seconds("encode"):
            return model.encode(get_ctranslate2_storage(features), to_cpu=to_cpu)

    def generate(self, features: np.ndarray, prompt: list[int], temperature: float = 0.0) -> Any:
        encoded = self.encode(features)
        with self.model_seconds("decode"):
            return self._generate(encoded, [prompt] * features.shape[0], temperature)

    def _generate(self, encoded: Any, prompts: list[list[int]], temperature: float = 0.0) -> Any:
        o = self.options
        beam_size, sampling = o.beam_size, {}
        if temperature > 0:  # one draw from the whole distribution, as faster-whisper samples
            beam_size, sampling = 1, {"sampling_temperature": temperature, "sampling_topk": 0}
        return self._model.model.generate(
            encoded,
            prompts,
            beam_size=beam_size,
            **sampling,
            patience=o.patience,
            length_penalty=o.length_penalty,
            max_length=self._model.max_length,
            suppress_blank=o.suppress_blank,
            suppress_tokens=list(o.suppress_tokens),
            no_repeat_ngram_size=o.no_repeat_ngram_size,
            repetition_penalty=o.repetition_penalty,
            return_scores=True,
            return_no_speech_prob=True,
        )


# The scheduler's operations. Equal ones share a batch, so each holds exactly what makes two
# requests' windows decodable together: the model, and the prompt (language, task, initial
# prompt) and temperature, or the tokenizer's language and task.


@dataclass(frozen=True)
class _Decode:
    engine: WhisperEngine
    prompt: tuple[int, ...]
    temperature: float = 0.0

    def __call__(self, features: list[np.ndarray]) -> list[tuple[list[int], float, float]]:
        results = self.engine.generate(np.stack(features), list(self.prompt), self.temperature)
        return [(r.sequences_ids[0], r.scores[0], r.no_speech_prob) for r in results]


@dataclass(frozen=True)
class _AlignmentInput:
    features: np.ndarray
    num_frames: int
    tokens: list[int]


@dataclass(frozen=True)
class _AlignWords:
    engine: WhisperEngine
    language: str
    task: str

    def __call__(self, inputs: list[_AlignmentInput]) -> list[list[dict[str, Any]]]:
        engine = self.engine
        encoded = engine.encode(np.stack([i.features for i in inputs]))
        with engine.model_seconds("align_words"):
            alignments: list[list[dict[str, Any]]] = engine._model.find_alignment(
                engine._tokenizer(self.language, self.task),
                [i.tokens for i in inputs],
                encoded,
                [i.num_frames for i in inputs],
            )
        return alignments


@dataclass(frozen=True)
class _DetectLanguage:
    engine: WhisperEngine

    def __call__(self, features: list[np.ndarray]) -> list[tuple[str, float]]:
        encoded = self.engine.encode(np.stack(features))
        with self.engine.model_seconds("detect_language"):
            results = self.engine._model.model.detect_language(encoded)
        return [(r[0][0][2:-2], float(r[0][1])) for r in results]


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
        no_speech_prob=parent.no_speech_prob,
    )
