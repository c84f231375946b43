"""The live sessions open in this process: their limit, their count, their threads, the wait at shutdown."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor


class LiveSessions:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Each session decodes at most a partial and a final at once: two threads a session,
        # apart from the pool file requests use, so live turns never queue behind uploads.
        self.threads = ThreadPoolExecutor(max_workers=max(1, 2 * limit), thread_name_prefix="live")
        self.opened = 0  # since start-up
        self.refused = 0  # past the limit
        self._open = 0
        self._changed = threading.Condition()

    @property
    def open(self) -> int:
        return self._open

    def enter(self) -> bool:
        """Take a place for a new session; False when every place is taken."""
        with self._changed:
            if self._open >= self.limit:
                self.refused += 1
                return False
            self._open += 1
            self.opened += 1
            return True

    def leave(self) -> None:
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    def wait_closed(self, timeout_s: float) -> bool:
        """Wait (from the drain's thread) until no session is open; whether none is."""
        with self._changed:
            return self._changed.wait_for(lambda: self._open == 0, timeout=timeout_s)

    def close(self) -> None:
        """At shutdown, after the drain: no decode is started any more."""
        self.threads.shutdown(wait=False, cancel_futures=True)
