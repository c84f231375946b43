"""How many requests are working right now: what start-up's late loading steps aside for.

The diarizer loads after the service is ready (app/serving/loader.py); its imports are seconds of
Python under the GIL, so it takes them one part at a time, each when no request is in its stages
(or after a bounded wait). A request waiting for that very diarizer counts as idle.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RequestActivity:
    def __init__(self) -> None:
        self._working = 0
        self._changed = threading.Condition()

    @contextmanager
    def working(self, step: int = 1) -> Iterator[None]:
        """Count a request in for the block (``step=-1``: out, while it only waits)."""
        self._add(step)
        try:
            yield
        finally:
            self._add(-step)

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Until no request works, at most ``timeout_s``; whether none does."""
        with self._changed:
            return self._changed.wait_for(lambda: self._working <= 0, timeout_s)

    def _add(self, step: int) -> None:
        with self._changed:
            self._working += step
            self._changed.notify_all()
