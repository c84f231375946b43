"""Named wall-clock timings for a sequence of steps (request stages, startup steps)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Span:
    """One step on the process's time axis: seconds since the process started, and its thread."""

    step: str
    start: float
    end: float
    thread: str


class StepTimer:
    """``with timer("asr"): ...`` adds the seconds spent to ``timings["asr"]``.

    Threads may share one (start-up loads, the scheduler's replicas): additions are locked.
    With ``spans``, each step is also recorded as a ``Span`` on the process's time axis (start-up's
    timeline: which step ran when, on which thread, beside which other).
    """

    def __init__(self, sink: dict[str, float] | None = None, spans: list[Span] | None = None) -> None:
        self.timings: dict[str, float] = sink if sink is not None else {}
        self.spans = spans
        self._origin = time.perf_counter() - (process_age_s() or 0.0) if spans is not None else 0.0
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            ended = time.perf_counter()
            with self._lock:
                self.timings[step] = round(self.timings.get(step, 0.0) + ended - started, 4)
                if self.spans is not None:
                    thread = threading.current_thread().name
                    self.spans.append(Span(step, self.at(started), self.at(ended), thread))

    def add(self, step: str, seconds: float) -> None:
        """``seconds`` more under ``step``, measured by the caller (a step interleaved with another)."""
        with self._lock:
            self.timings[step] = round(self.timings.get(step, 0.0) + seconds, 4)

    def at(self, moment: float | None = None) -> float:
        """``moment`` (``time.perf_counter()``; default now) as seconds since the process started."""
        return round((time.perf_counter() if moment is None else moment) - self._origin, 3)

    def mark(self, step: str) -> None:
        """A step from the process's start until now (the time before loading)."""
        end = self.at()
        with self._lock:
            self.timings[step] = round(end, 4)
            if self.spans is not None:
                self.spans.append(Span(step, 0.0, end, threading.current_thread().name))


def process_age_s() -> float | None:
    """Seconds since this process started (Linux's /proc, 10 ms steps); None where it cannot be read."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(after_name[19])  # field 22 of proc(5), "starttime"; this list starts at field 3
        uptime_s = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime_s - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None
