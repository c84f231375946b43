"""What Whisper decodes a request's windows with, and how soon its windows are wanted.

``ResolvedOptions.decoding`` (``options.py``) builds a ``Decoding`` once the language is known;
the Whisper stage hands its ``Sampling`` to the engine and its batch size and ``Urgency`` to
the batch scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from app.engine.whisper.fallback import Checks
from app.transcript import Task


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

    @property
    def sampling(self) -> Sampling:
        return Sampling(self.checks.temperatures[0])
