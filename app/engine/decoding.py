"""What Whisper decodes a request's windows with, and how soon its windows are wanted.

``ResolvedOptions.decoding`` (``options.py``) builds a ``Decoding`` once the language is known;
the Whisper stage hands its ``Sampling`` to the engine and its batch size and ``Urgency`` to
the batch scheduler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

from app.engine.whisper.fallback import Checks
from app.transcript import Task

FRAMES_PER_SECOND = 100  # log-Mel frames: a 10 ms hop
FULL_WINDOW_FRAMES = 3000  # 30 s: what Whisper was trained on
# A short window is its audio rounded up to this. Rounded up to 10 s, partials' WER against the
# final text stayed at a full window's (0.19 vs 0.18); to 5 s it was 0.68, to 1 s 4.2: Whisper,
# trained on 30 s windows, loses its way on shorter ones (python -m bench.partial_window,
# bundled base, greedy, the sample call's turns).
SHORT_WINDOW_STEP_S = 10.0
_SHORT_STEP_FRAMES = int(SHORT_WINDOW_STEP_S * FRAMES_PER_SECOND)
SHORT_WINDOW_FRAMES = tuple(range(_SHORT_STEP_FRAMES, FULL_WINDOW_FRAMES, _SHORT_STEP_FRAMES))  # 1,000 and 2,000


@dataclass(frozen=True)
class Sampling:
    """How the decoder picks tokens; handed whole to the engine, and part of the batching key."""

    temperature: float  # 0: beam search; above: sampling at that temperature


class Urgency(IntEnum):
    """Who waits for a decode, and so how soon: the Whisper scheduler queues more urgent work
    first (then in order of arrival), and tops its batches up with less urgent windows."""

    FILE = 0  # a file or a job: its client waits for the whole transcript
    PARTIAL = 1  # a live turn's provisional text, while its speaker still talks
    TURN = 2  # a committed live turn: its speaker has stopped and waits for the final text


@dataclass(frozen=True)
class Decoding:
    """What Whisper decodes a request's windows with: the prompt's parts, the batch and sampling."""

    language: str
    task: Task
    initial_prompt: str | None
    checks: Checks  # the temperatures, from the first, and what a window's decode must pass
    batch_size: int
    hotwords: str | None = None
    urgency: Urgency = Urgency.FILE
    short_windows: bool = False  # encode a window's audio only (see window_frames): live partials

    @property
    def sampling(self) -> Sampling:
        return Sampling(self.checks.temperatures[0])

    def window_frames(self, longest_s: float, engine_takes_short: bool) -> int:
        """The log-Mel frames a request's windows are encoded with, its longest holding ``longest_s``
        of audio: a full 30 s window's, or with ``short_windows`` (on an engine that takes them)
        the audio rounded up to ``SHORT_WINDOW_STEP_S``, so a partial of a 3 s turn costs a third
        of a window's encoder and cross-attention, not all of it."""
        if not (self.short_windows and engine_takes_short):
            return FULL_WINDOW_FRAMES
        steps = max(1, math.ceil(longest_s / SHORT_WINDOW_STEP_S))
        return min(FULL_WINDOW_FRAMES, steps * _SHORT_STEP_FRAMES)
