"""Which language is spoken, and how sure the model is: identification that looks further when unsure.

Whisper identifies the language from one 30 s window of speech. On a short or unclear first
window it can be confidently wrong or plainly unsure (the bundled base took 6 s of espeak French
for Czech at 0.17). When the first window's probability is under ``SURE`` (faster-whisper's
``language_detection_threshold``), up to ``MAX_WINDOWS`` windows of the request's speech are
identified and their votes pooled; an answer still under ``SURE`` carries a warning.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.control.cancellation import CancelToken
from app.engine.audio import SAMPLE_RATE
from app.engine.vad import CHUNK_SECONDS

SURE = 0.5
MAX_WINDOWS = 4  # two minutes of speech at most: enough to decide, bounded on a long file
_MIN_MORE_S = 5.0  # a last window shorter than this adds little: left out when others vote

Features = Callable[[np.ndarray], np.ndarray]
Submit = Callable[[list[np.ndarray]], list[tuple[str, float]]]  # windows' features → (language, p) each


@dataclass(frozen=True)
class DetectLanguage:
    """The scheduler's operation: each window's likeliest language and its probability."""

    engine: Any

    def __call__(self, features: list[np.ndarray]) -> list[tuple[str, float]]:
        return self.engine.detect_language(np.stack(features))


def identify(
    speech: np.ndarray, features: Features, submit: Submit, cancel: CancelToken | None = None
) -> tuple[str, float]:
    """The language of ``speech`` (the request's speech, joined) and its probability."""
    window = CHUNK_SECONDS * SAMPLE_RATE
    windows = [speech[at : at + window] for at in range(0, max(len(speech), 1), window)][:MAX_WINDOWS]
    [first] = submit([features(windows[0])])
    more = [w for w in windows[1:] if len(w) >= _MIN_MORE_S * SAMPLE_RATE]
    if first[1] >= SURE or not more:
        return first
    if cancel is not None:
        cancel.check()
    return pooled([first, *submit([features(w) for w in more])])


def pooled(votes: list[tuple[str, float]]) -> tuple[str, float]:
    """The language with the most probability over the windows, and its mean probability."""
    totals: dict[str, float] = defaultdict(float)
    for language, probability in votes:
        totals[language] += probability
    language = max(totals, key=lambda code: totals[code])
    return language, totals[language] / len(votes)


def unsure(language: str, probability: float, model: str) -> str | None:
    """The warning for an identification under ``SURE``, or None."""
    if probability >= SURE:
        return None
    return (
        f"The language was identified as {language!r} with probability {probability:.2f} only: the text may be "
        f"in the wrong language or made up. Send `language` if you know it (model {model})."
    )


def english_only(model: str) -> str:
    """The warning for an English-only model that was not told the language."""
    return (
        f"The model {model} transcribes English only and cannot tell which language is spoken: speech in "
        "another language comes out as invented English. Send language=en to confirm it is English, or "
        "choose a multilingual model."
    )
