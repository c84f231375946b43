"""A bounded count of transcriptions in the service, so overload is refused, not queued forever."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import Busy

RETRY_AFTER_SECONDS = 5


class AdmissionGate:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_flight = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def admit(self) -> Iterator[None]:
        with self._lock:
            if self._in_flight >= self.limit:
                raise Busy(
                    f"The service is handling {self.limit} transcriptions already; retry shortly.",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                )
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
