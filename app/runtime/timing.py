"""Named wall-clock timings for a sequence of steps (request stages, startup steps)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class StepTimer:
    """``with timer("asr"): ...`` adds the seconds spent to ``timings["asr"]``.

    Threads may share one (start-up loads, the scheduler's replicas): additions are locked.
    """

    def __init__(self, sink: dict[str, float] | None = None) -> None:
        self.timings: dict[str, float] = sink if sink is not None else {}
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self.timings[step] = round(self.timings.get(step, 0.0) + elapsed, 4)


def process_age_s() -> float | None:
    """Seconds since this process started (Linux's /proc, 10 ms steps); None where it cannot be read."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(after_name[19])  # field 22 of proc(5), "starttime"; this list starts at field 3
        uptime_s = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime_s - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None
