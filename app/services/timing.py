"""Named wall-clock timings for a sequence of steps (request stages, startup steps)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


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
