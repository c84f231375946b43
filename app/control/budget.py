"""Byte budgets shared by every request: decoded audio in memory, uploads spooled on disk.

A request reserves as it grows (a chunk of decoded samples, a chunk of upload) and gives
everything back when it ends, so no mix of valid or hostile requests can hold more than the
budget at once. A reservation that does not fit is refused at once (503 with Retry-After):
waiting for room would let a burst of bombs park in memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from app.config import Settings
from app.errors import Busy, retry_later


class ByteBudget:
    def __init__(self, name: str, limit_bytes: int) -> None:
        self.name = name
        self.limit = limit_bytes
        self._used = 0
        self._peak = 0
        self._refused = 0
        self._lock = threading.Lock()

    def try_reserve(self, amount: int) -> bool:
        with self._lock:
            if self._used + amount > self.limit:
                self._refused += 1
                return False
            self._used += amount
            self._peak = max(self._peak, self._used)
            return True

    def release(self, amount: int) -> None:
        with self._lock:
            self._used -= amount

    @property
    def used(self) -> int:
        return self._used

    @property
    def peak(self) -> int:
        return self._peak

    @property
    def refused(self) -> int:
        return self._refused

    def reservation(self) -> Reservation:
        return Reservation(self)


class Reservation:
    """One request's share of a budget; ``close`` returns it all (use it as a context manager)."""

    def __init__(self, budget: ByteBudget) -> None:
        self.budget = budget
        self.held = 0

    def grow(self, amount: int) -> None:
        if not self.budget.try_reserve(amount):
            mib = 1024 * 1024
            raise Busy(
                f"The server's {self.budget.name} budget ({self.budget.limit / mib:.4g} MiB) is taken by requests "
                "in flight; retry shortly.",
                headers=retry_later(),
            )
        self.held += amount

    def close(self) -> None:
        self.budget.release(self.held)
        self.held = 0

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def memory_available_bytes() -> int:
    """What this process may use: the container's cgroup limit where there is one, else RAM."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value.isdigit() and int(value) < 1 << 60:
            return int(value)
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def disk_free_bytes(directory: Path) -> int:
    return shutil.disk_usage(directory).free


@dataclass(frozen=True)
class Budgets:
    memory: ByteBudget  # decoded audio
    disk: ByteBudget  # spooled uploads

    @classmethod
    def for_settings(cls, settings: Settings) -> Budgets:
        mib = 1024 * 1024
        memory = int(settings.audio_memory_budget_mb * mib) or memory_available_bytes() // 4
        disk = int(settings.upload_disk_budget_mb * mib)
        if not disk:
            temp_dir = settings.temp_dir or Path(tempfile.gettempdir())
            disk = min(disk_free_bytes(temp_dir) // 2, settings.max_pending_requests * settings.max_upload_bytes)
        return cls(ByteBudget("decoded-audio memory", memory), ByteBudget("upload disk", disk))
