"""When a window's decode is not to be trusted: faster-whisper's checks, for batched decoding.

Whisper invents text when it cannot hear — a loop of one phrase, "Thank you for watching!" on
noise. faster-whisper's sequential path checks every window's decode and decodes it again at
the next temperature of a schedule when the text compresses too well (a loop) or its tokens
were unlikely on average, and gives no text for a window the model marks as no speech. Its
batched path (and WhisperX's) skips the checks; ``stage.py`` applies them here, per window,
with the retries batched together. The rules and defaults are faster-whisper's
(``generate_with_fallback`` and the no-speech skip in ``generate_segments``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

Window = TypeVar("Window")  # one window's decode (the engine's Decoded)

# faster-whisper's (and OpenAI's whisper's) defaults.
TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6


@dataclass(frozen=True)
class Checks:
    """The temperatures a window may be decoded at, in order, and the thresholds its decode must pass."""

    temperatures: tuple[float, ...] = TEMPERATURES
    compression_ratio_threshold: float = COMPRESSION_RATIO_THRESHOLD
    log_prob_threshold: float = LOG_PROB_THRESHOLD
    no_speech_threshold: float = NO_SPEECH_THRESHOLD


# Beam search once and no retries, as WhisperX's batched path decodes (the warmup, the parity
# tests and the engine benchmarks).
ONCE = Checks(temperatures=(0.0,))


@dataclass(frozen=True)
class Attempt:
    """One decode of a window, judged."""

    temperature: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


def compression_ratio(text: str) -> float:
    """How well the text compresses (zlib): Whisper's measure of repetition; over 2.4 suggests a loop."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def passes(attempt: Attempt, checks: Checks) -> bool:
    """Whether this decode stands (no next temperature): it neither loops nor is unlikely, or it
    is silence (the model says no speech, and the tokens are unlikely: decoding again would only
    invent something else)."""
    if _silence(attempt, checks):
        return True
    return (
        attempt.compression_ratio <= checks.compression_ratio_threshold
        and attempt.avg_logprob >= checks.log_prob_threshold
    )


def chosen(attempts: list[Attempt], checks: Checks) -> int:
    """The attempt a window keeps: the last one when it passed; when none did, the likeliest of
    those that do not loop (of all, when every one does)."""
    if passes(attempts[-1], checks):
        return len(attempts) - 1
    unlooped = [i for i, a in enumerate(attempts) if a.compression_ratio <= checks.compression_ratio_threshold]
    return max(unlooped or range(len(attempts)), key=lambda i: attempts[i].avg_logprob)


def no_speech(attempt: Attempt, checks: Checks) -> bool:
    """Whether the kept decode gives no text: the model says no speech, and its tokens are not
    likely enough to overrule that."""
    return attempt.no_speech_prob > checks.no_speech_threshold and attempt.avg_logprob <= checks.log_prob_threshold


def checked(
    decoded: list[Window],
    judge: Callable[[Window, float], Attempt],
    checks: Checks,
    decode_again: Callable[[float, list[int]], list[Window]],
) -> list[tuple[Window, Attempt]]:
    """Each window's kept decode and its judgement. The windows whose decode fails the checks are
    decoded again, all together (``decode_again(temperature, their indices)``), at each next
    temperature until they pass or the schedule ends."""
    tries = [[(window, judge(window, checks.temperatures[0]))] for window in decoded]
    for temperature in checks.temperatures[1:]:
        failing = [i for i, attempts in enumerate(tries) if not passes(attempts[-1][1], checks)]
        if not failing:
            break
        for index, window in zip(failing, decode_again(temperature, failing), strict=True):
            tries[index].append((window, judge(window, temperature)))
    return [attempts[chosen([a for _, a in attempts], checks)] for attempts in tries]


def doubtful_windows(spans: list[tuple[float, float]], windows: int) -> str:
    """The warning for windows whose text failed the checks at every temperature (it may be made up)."""
    where = ", ".join(f"{start:.1f}-{end:.1f} s" for start, end in spans[:5]) + (" …" if len(spans) > 5 else "")
    return (
        f"{len(spans)} of {windows} windows failed the checks at every temperature (their text loops or is "
        f"unlikely), so their text may be made up: {where}."
    )


def _silence(attempt: Attempt, checks: Checks) -> bool:
    return attempt.no_speech_prob > checks.no_speech_threshold and attempt.avg_logprob < checks.log_prob_threshold
