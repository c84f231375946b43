"""The Whisper stage: language, text and Whisper's word times of a request, on any ``WhisperEngine``.

Every model call goes through a ``BatchScheduler`` (batching.py): the request's thread
computes the windows' features, and the scheduler's threads run the engine on them, in
batches shared with concurrent requests that decode the same way (the same prompt and
temperature). While one batch of a long request is on the GPU, its thread prepares the next.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

import numpy as np

from app.control.cancellation import CancelToken
from app.control.progress import Progress
from app.engine.audio import SAMPLE_RATE
from app.engine.decoding import FULL_WINDOW_FRAMES, Decoding, Sampling, Urgency
from app.engine.vad import CHUNK_SECONDS, SpeechChunk
from app.engine.whisper import fallback, language
from app.engine.whisper.batching import BatchScheduler, Job, Operation
from app.engine.whisper.engine import AlignmentInput, Decoded, RefillingEngine, WhisperEngine, token_logprobs
from app.engine.whisper.sources import WhisperSource
from app.runtime.timing import StepTimer
from app.transcript import Segment, TextListener, TextPiece, Word

logger = logging.getLogger(__name__)

Span = TypeVar("Span", SpeechChunk, Segment)  # a stretch of audio: a VAD chunk or a decoded segment
In = TypeVar("In")
Out = TypeVar("Out")

_CHUNK_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE
# Batches a request has prepared but not yet got back: one on the GPU, one ready behind it.
# More would only hold features in memory (1.5 MB per window for large-v3).
_BATCHES_AHEAD = 2
_PREPEND_PUNCTUATIONS = "\"'“¿([{-"
_APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


class Whisper:
    """One loaded Whisper engine behind its scheduler; what the pipeline asks of Whisper."""

    def __init__(self, engine: WhisperEngine, scheduler: BatchScheduler | None = None) -> None:
        self.engine = engine
        self.scheduler = scheduler or BatchScheduler("whisper")
        self.decoded = DecodedCount()

    @property
    def source(self) -> WhisperSource:
        return self.engine.source

    @property
    def multilingual(self) -> bool:
        return self.engine.multilingual

    @property
    def languages(self) -> frozenset[str]:
        return self.engine.languages

    @property
    def feature_device(self) -> str:
        return self.engine.feature_device

    @property
    def model_seconds(self) -> StepTimer:
        return self.engine.model_seconds

    def detect_language(
        self,
        audio: np.ndarray,
        chunks: list[SpeechChunk],
        cancel: CancelToken | None = None,
        urgency: Urgency = Urgency.FILE,
    ) -> tuple[str, float | None]:
        """Identify the language on the detected speech (not on leading silence): its first 30 s,
        more when unsure (language.py). An English-only model identifies nothing: (en, None)."""
        if not self.engine.multilingual:
            return "en", None
        speech = np.concatenate([_slice(audio, c) for c in chunks])

        def submit(features: list[np.ndarray]) -> list[tuple[str, float]]:
            return self._run(language.DetectLanguage(self.engine), features, len(features), urgency, cancel)

        return language.identify(speech, self._features, submit, cancel)

    def prepare(self, batch_size: int, decoding: Decoding) -> None:
        """Ready the engine for batches of up to ``batch_size`` windows decoded like ``decoding``."""
        tokenizer = self.engine.tokenizer(decoding.language, decoding.task)
        self.engine.prepare(batch_size, self.engine.prompt(tokenizer, decoding.initial_prompt, decoding.hotwords))

    def transcribe(
        self,
        audio: np.ndarray,
        chunks: list[SpeechChunk],
        decoding: Decoding,
        *,
        timer: StepTimer | None = None,
        cancel: CancelToken | None = None,
        progress: Progress | None = None,
        listener: TextListener | None = None,
        warnings: list[str] | None = None,
    ) -> list[Segment]:
        """Decode every speech chunk into one segment of text (no word times yet), each window
        checked and decoded again when it fails the checks (fallback.py).

        ``timer`` gets the seconds this thread spent computing features, under ``features``.
        ``listener`` hears each window's text in audio order as soon as its batch and every
        batch before it are decoded, while later batches are still on their way.
        ``warnings`` gets a line when windows failed the checks at every temperature.
        """
        tokenizer = self.engine.tokenizer(decoding.language, decoding.task)
        prompt = self.engine.prompt(tokenizer, decoding.initial_prompt, decoding.hotwords)
        logprobs = listener is not None and listener.logprobs
        longest = max((c.end - c.start for c in chunks), default=0.0)
        frames = decoding.window_frames(longest, self.engine.takes_short_windows)
        segments: list[Segment] = []
        timer = timer or StepTimer()
        doubtful: list[Segment] = []  # kept with text although no temperature passed the checks

        def collect(first: int, decoded: list[Decoded]) -> None:
            self.decoded.add(decoded)
            batch = chunks[first : first + len(decoded)]
            retry = partial(self._decode_again, audio, batch, prompt, decoding, frames, logprobs, timer, cancel)
            kept = fallback.checked(decoded, partial(_judged, tokenizer), decoding.checks, retry)
            for chunk, (window, attempt) in zip(batch, kept, strict=True):
                if fallback.no_speech(attempt, decoding.checks):
                    continue  # the model says no speech, and its words were not likely enough to overrule it
                text_tokens = [t for t in window.tokens if t < tokenizer.eot]
                segment = Segment(
                    start=round(chunk.start, 3),
                    end=round(chunk.end, 3),
                    text=tokenizer.decode(text_tokens),
                    avg_logprob=window.avg_logprob,
                    no_speech_prob=round(window.no_speech_prob, 4),
                    temperature=attempt.temperature,
                    compression_ratio=round(attempt.compression_ratio, 3),
                )
                if not segment.text.strip():
                    continue
                if not fallback.passes(attempt, decoding.checks):
                    doubtful.append(segment)
                if listener is not None:
                    logprobs_of = token_logprobs(tokenizer, text_tokens, window) if listener.logprobs else None
                    listener(TextPiece(len(segments), segment.start, segment.end, segment.text.strip(), logprobs_of))
                segments.append(segment)

        self._in_batches(
            _Decode(self.engine, tuple(prompt), decoding.sampling, frames, logprobs=logprobs),
            chunks,
            decoding.batch_size,
            decoding.urgency,
            lambda c: self._features(_slice(audio, c), frames),
            timer,
            cancel,
            progress,
            on_batch=collect,
        )
        if doubtful and warnings is not None:
            warnings.append(fallback.doubtful_windows([(s.start, s.end) for s in doubtful], len(chunks)))
        return segments

    def _decode_again(
        self,
        audio: np.ndarray,
        batch: list[SpeechChunk],
        prompt: list[int],
        decoding: Decoding,
        frames: int,
        logprobs: bool,
        timer: StepTimer,
        cancel: CancelToken | None,
        temperature: float,
        which: list[int],
    ) -> list[Decoded]:
        """The windows ``which`` of a batch decoded again at ``temperature``, batched through the
        scheduler with other requests' retries at that temperature."""
        with timer("features"):
            features = [self._features(_slice(audio, batch[index]), frames) for index in which]
        retry = _Decode(self.engine, tuple(prompt), Sampling(temperature), frames, logprobs=logprobs)
        decoded = self._run(retry, features, decoding.batch_size, decoding.urgency, cancel)
        self.decoded.add(decoded)
        return decoded

    def _run(
        self,
        operation: Operation[In, Out],
        inputs: list[In],
        batch_size: int,
        urgency: Urgency,
        cancel: CancelToken | None,
    ) -> list[Out]:
        """One job through the scheduler, waited for; withdrawn if the wait ends any other way."""
        job = self.scheduler.submit(operation, inputs, batch_size, urgency)
        try:
            return job.result(cancel)
        except BaseException:
            self.scheduler.cancel(job)
            raise

    def time_words(
        self,
        audio: np.ndarray,
        segments: list[Segment],
        decoding: Decoding,
        *,
        timer: StepTimer | None = None,
        cancel: CancelToken | None = None,
        progress: Progress | None = None,
    ) -> list[Segment]:
        """Whisper's own word times for decoded segments, split into sentence-sized segments."""
        from faster_whisper.transcribe import merge_punctuations

        tokenizer = self.engine.tokenizer(decoding.language, decoding.task)

        def prepare(segment: Segment) -> AlignmentInput:
            features, num_frames = self.engine.alignment_features(_slice(audio, segment))
            tokens = [t for t in tokenizer.encode(segment.text) if t < tokenizer.eot]
            return AlignmentInput(features, num_frames, tokens)

        alignments = self._in_batches(
            _AlignWords(self.engine, decoding.language, decoding.task),
            segments,
            decoding.batch_size,
            decoding.urgency,
            prepare,
            timer,
            cancel,
            progress,
        )
        timed: list[Segment] = []
        for segment, alignment in zip(segments, alignments, strict=True):
            merge_punctuations(alignment, _PREPEND_PUNCTUATIONS, _APPEND_PUNCTUATIONS)
            timed.extend(_split_sentences(segment, alignment))
        return timed

    def text_tokens(self, texts: list[str], decoding: Decoding) -> list[list[int]]:
        """Whisper's tokens for each text (segments', as OpenAI's verbose_json lists them)."""
        tokenizer = self.engine.tokenizer(decoding.language, decoding.task)
        return [[t for t in tokenizer.encode(" " + text.strip()) if t < tokenizer.eot] for text in texts]

    def _in_batches(
        self,
        operation: Operation[In, Out],
        spans: list[Span],
        batch_size: int,
        urgency: Urgency,
        prepare: Callable[[Span], In],
        timer: StepTimer | None,
        cancel: CancelToken | None = None,
        progress: Progress | None = None,
        on_batch: Callable[[int, list[Out]], None] | None = None,
    ) -> list[Out]:
        """Prepare ``spans`` a batch at a time in this thread while the scheduler runs the batch before.

        A cancelled request stops at the next batch boundary; its queued batches are withdrawn.
        ``progress`` hears of each batch as it is handed to the scheduler (at most
        ``_BATCHES_AHEAD`` batches ahead of the finished ones), with the audio it reaches.
        ``on_batch`` gets each batch's outputs (with its first span's index) in order, as soon
        as that batch and those before it are done.
        """
        timer = timer or StepTimer()
        jobs: list[Job[In, Out]] = []
        handed = 0  # batches given to on_batch

        def hand_on(wait: bool) -> None:
            nonlocal handed
            while handed < len(jobs) and (wait or jobs[handed].done):
                outputs = jobs[handed].result(cancel)
                if on_batch is not None:
                    on_batch(handed * batch_size, outputs)
                handed += 1

        try:
            for first in range(0, len(spans), batch_size):
                if cancel is not None:
                    cancel.check()
                if len(jobs) >= _BATCHES_AHEAD:
                    jobs[-_BATCHES_AHEAD].result(cancel)
                hand_on(wait=False)
                with timer("features"):
                    inputs = [prepare(span) for span in spans[first : first + batch_size]]
                jobs.append(self.scheduler.submit(operation, inputs, batch_size, urgency))
                if progress is not None:
                    done = first + len(inputs)
                    progress.advance(done / len(spans), spans[done - 1].end)
            hand_on(wait=True)
            return [output for job in jobs for output in job.result(cancel)]
        except BaseException:
            for job in jobs:
                self.scheduler.cancel(job)
            raise

    def _features(self, audio: np.ndarray, frames: int = FULL_WINDOW_FRAMES) -> np.ndarray:
        """WhisperX's log-Mel features of one window, zero-padded to 30 s, computed where Whisper
        runs; the first ``frames`` of them (a short window's: ``Decoding.window_frames``).

        On a GPU this takes the STFT off the CPU: many request threads each running torch's
        multi-threaded CPU STFT at once starve the scheduler thread, whose decoder is bound by
        how fast one CPU core launches kernels (measured with bench/throughput.py).
        """
        from whisperx.audio import log_mel_spectrogram

        # Negative padding crops, as in WhisperX: a window is exactly 3000 frames.
        padding = _CHUNK_SAMPLES - audio.shape[0]
        mel = log_mel_spectrogram(audio, n_mels=self.engine.n_mels, padding=padding, device=self.feature_device)
        features: np.ndarray = mel.cpu().numpy()
        return features[:, :frames]


class DecodedCount:
    """Windows decoded and the text tokens the decoder produced for them (end of text not counted):
    what a speed figure is per window, whichever engine decoded."""

    def __init__(self) -> None:
        self.windows = 0
        self.tokens = 0
        self._lock = threading.Lock()

    def add(self, decoded: list[Decoded]) -> None:
        with self._lock:
            self.windows += len(decoded)
            self.tokens += sum(len(d.tokens) for d in decoded)


# The scheduler's operations. Equal ones share a batch, so each holds exactly what makes two
# requests' windows decodable together: the engine, and the prompt (language, task, initial
# prompt) and sampling, or the tokenizer's language and task.


@dataclass(frozen=True)
class _Decode:
    engine: WhisperEngine
    prompt: tuple[int, ...]
    sampling: Sampling
    frames: int  # each window's log-Mel frames: only windows of one length share a batch
    logprobs: bool = False

    def __call__(self, features: list[np.ndarray]) -> list[Decoded]:
        return self.engine.decode(np.stack(features), list(self.prompt), self.sampling, logprobs=self.logprobs)

    @property
    def refills(self) -> bool:
        return self.engine.refills_windows

    def refilled(
        self,
        features: list[np.ndarray],
        more: Callable[[int], list[np.ndarray]],
        deliver: Callable[[int, Decoded], None],
    ) -> None:
        engine = cast(RefillingEngine, self.engine)
        engine.decode_refilled(np.stack(features), list(self.prompt), self.sampling, more, deliver)


@dataclass(frozen=True)
class _AlignWords:
    engine: WhisperEngine
    language: str
    task: str

    def __call__(self, inputs: list[AlignmentInput]) -> list[list[dict[str, Any]]]:
        return self.engine.align_words(inputs, self.engine.tokenizer(self.language, self.task))


def _judged(tokenizer: Any, window: Decoded, temperature: float) -> fallback.Attempt:
    text = tokenizer.decode([t for t in window.tokens if t < tokenizer.eot]).strip()
    ratio = fallback.compression_ratio(text)
    return fallback.Attempt(temperature, window.avg_logprob, window.no_speech_prob, ratio)


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
        temperature=parent.temperature,
        compression_ratio=parent.compression_ratio,
    )
