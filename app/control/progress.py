"""How far one transcription got: its stage, the fraction done, the audio covered, the time left.

The pipeline announces each stage it enters and Whisper reports each batch of windows it
hands to the scheduler; a job's heartbeat reads ``snapshot()`` from another thread. The
overall fraction weighs the stages by their usual share of the work, over only the stages
this request runs, so it moves forward steadily and never backwards.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Rough shares of a request's time with every stage on (measured on the bundled model, CPU,
# and the H100 figures in docs/performance.md): ASR dominates, diarization is next.
_WEIGHTS = {
    "decode": 0.05,
    "vad": 0.05,
    "language_detection": 0.02,
    "asr": 0.5,
    "alignment": 0.15,
    "diarization": 0.23,
}
_MIN_FRACTION_FOR_ESTIMATE = 0.05


@dataclass(frozen=True)
class ProgressSnapshot:
    stage: str | None
    fraction: float
    audio_seconds_done: float
    audio_seconds: float | None
    eta_s: float | None


class Progress:
    def __init__(self, stages: tuple[str, ...] = tuple(_WEIGHTS), clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._weights: dict[str, float] = {}
        self.plan(stages)
        self._stage: str | None = None
        self._done = 0.0  # weight of the stages finished
        self._within = 0.0  # fraction of the current stage
        self._audio_done = 0.0
        self._duration: float | None = None
        self._started = clock()

    def plan(self, stages: tuple[str, ...]) -> None:
        """The stages this request will run, once its options are known (before the first)."""
        with self._lock:
            total = sum(_WEIGHTS.get(s, 0.0) for s in stages) or 1.0
            self._weights = {s: _WEIGHTS.get(s, 0.0) / total for s in stages}

    def audio(self, duration: float) -> None:
        with self._lock:
            self._duration = duration

    def enter(self, stage: str) -> None:
        with self._lock:
            if self._stage is not None:
                self._done += self._weights.get(self._stage, 0.0)
            self._stage, self._within = stage, 0.0

    def advance(self, fraction: float, audio_seconds_done: float | None = None) -> None:
        """The current stage is ``fraction`` done; ASR also says up to where it has decoded."""
        with self._lock:
            self._within = max(self._within, min(max(fraction, 0.0), 1.0))
            if audio_seconds_done is not None:
                self._audio_done = max(self._audio_done, audio_seconds_done)

    def finish(self) -> None:
        with self._lock:
            self._stage, self._done, self._within = "done", 1.0, 0.0
            if self._duration is not None:
                self._audio_done = self._duration

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            current = self._weights.get(self._stage, 0.0) if self._stage else 0.0
            fraction = min(self._done + current * self._within, 1.0)
            elapsed = self._clock() - self._started
            eta = elapsed * (1 - fraction) / fraction if fraction >= _MIN_FRACTION_FOR_ESTIMATE else None
            return ProgressSnapshot(
                stage=self._stage,
                fraction=round(fraction, 4),
                audio_seconds_done=round(self._audio_done, 3),
                audio_seconds=self._duration,
                eta_s=round(eta, 1) if eta is not None else None,
            )
