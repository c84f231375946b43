"""A request's cancel switch, checked by the pipeline at every stage and batch boundary.

Set by the HTTP layer when the client disconnects or the server drains for shutdown; the
request's thread then stops at the next boundary, and its windows still queued for the
model leave the scheduler (``WhisperEngine`` cancels its jobs on the way out).
"""

from __future__ import annotations

import asyncio
import threading
import time

from app.errors import Cancelled, retry_later

_POLL_S = 0.1


class CancelToken:
    def __init__(self, parent: CancelToken | None = None) -> None:
        self._event = threading.Event()
        self._parent = parent
        self.reason: str | None = None

    def child(self) -> CancelToken:
        """A token for work started on the request's behalf: cancelled with it, or on its own."""
        return CancelToken(self)

    def cancel(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or (self._parent is not None and self._parent.cancelled)

    def error(self) -> Cancelled:
        return Cancelled(f"The transcription was cancelled: {self.reason}.", headers=retry_later())

    def check(self) -> None:
        if self._parent is not None:
            self._parent.check()
        if self._event.is_set():
            raise self.error()

    def pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking when cancelled; whether it was."""
        return self._event.wait(seconds)

    async def until_cancelled(self) -> None:
        """Return once the token is cancelled (for the event loop, which must not block on it)."""
        while not self.cancelled:
            await asyncio.sleep(_POLL_S)

    def wait(self, done: threading.Event, timeout_s: float | None = None) -> bool:
        """Wait for ``done``, giving up with ``Cancelled`` as soon as the token is cancelled;
        with ``timeout_s``, at most that long. Whether ``done`` is set."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not done.wait(_POLL_S):
            self.check()
            if deadline is not None and time.monotonic() > deadline:
                return False
        return True
