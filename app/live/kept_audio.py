"""A live session's audio: the clock of every 16 kHz sample received, and what is still kept.

The session keeps audio from its last commit (or, with server VAD between turns, a little
padding before now) and forgets the rest, so a session of hours holds seconds.
"""

from __future__ import annotations

import numpy as np


class KeptAudio:
    def __init__(self) -> None:
        self.received = 0  # samples received this session: the session's clock
        self.kept_from = 0  # the first sample still kept
        self._pieces: list[np.ndarray] = []  # the audio from kept_from to received

    def append(self, samples: np.ndarray) -> None:
        self._pieces.append(samples)
        self.received += len(samples)

    @property
    def uncommitted(self) -> int:
        """Samples kept and not yet committed: with manual commits, the input audio buffer."""
        return self.received - self.kept_from

    def span(self, start: int, end: int) -> np.ndarray:
        """The audio from ``start`` to ``end`` (what is still kept of it)."""
        audio = self._joined()
        start, end = max(start, self.kept_from), max(end, self.kept_from)
        return audio[start - self.kept_from : end - self.kept_from].copy()

    def forget_before(self, sample: int) -> None:
        sample = min(max(sample, self.kept_from), self.received)
        if sample == self.kept_from:
            return
        rest = self._joined()[sample - self.kept_from :]
        self._pieces, self.kept_from = ([rest.copy()] if len(rest) else []), sample

    def drop(self) -> None:
        """Forget everything kept (the session closed)."""
        self._pieces = []

    def _joined(self) -> np.ndarray:
        return np.concatenate(self._pieces) if self._pieces else np.zeros(0, dtype=np.float32)
