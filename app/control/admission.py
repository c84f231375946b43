"""Who may start a transcription: a bounded count in flight, nothing new while draining.

Every admitted request holds a ``CancelToken`` registered here, so shutdown can cancel
whatever is still running once its grace period is over, and ``/health`` can report
requests cancelled (client gone, shutdown) next to those refused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from app.control.cancellation import CancelToken
from app.errors import Busy, Draining, retry_later


class AdmissionGate:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.draining = False
        self._drain_deadline = 0.0  # monotonic time when the shutdown's grace ends
        self.refused = 0
        self.cancelled = 0
        self._tokens: set[CancelToken] = set()
        self._idle = threading.Condition()

    @property
    def in_flight(self) -> int:
        return len(self._tokens)

    @contextmanager
    def admit(self) -> Iterator[CancelToken]:
        with self._idle:
            if self.draining:
                self.refused += 1
                raise Draining("The server is shutting down; retry on another instance.", headers=retry_later())
            if len(self._tokens) >= self.limit:
                self.refused += 1
                raise Busy(
                    f"The service is handling {self.limit} transcriptions already; retry shortly.",
                    headers=retry_later(),
                )
            token = CancelToken()
            self._tokens.add(token)
        try:
            yield token
        finally:
            with self._idle:
                self._tokens.discard(token)
                if token.cancelled:
                    self.cancelled += 1
                self._idle.notify_all()

    def drain(self, grace_s: float) -> None:
        """Admit nothing new from now on; what runs has ``grace_s`` to finish."""
        with self._idle:
            self._drain_deadline = time.monotonic() + grace_s  # first: whoever sees draining reads it
            self.draining = True

    def grace_left(self) -> float:
        """Seconds left of the shutdown's grace (0 once it is over)."""
        return max(self._drain_deadline - time.monotonic(), 0.0)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is in flight; False if that took longer than ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._tokens:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    def cancel_all(self, reason: str) -> int:
        with self._idle:
            tokens = list(self._tokens)
        for token in tokens:
            token.cancel(reason)
        return len(tokens)
