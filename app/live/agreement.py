"""Partial text of an open turn that will not be taken back: local agreement between decodes.

Each partial decode of a growing turn may rewrite its last words. A word is shown once two
successive decodes agree on it and on every word before it (LocalAgreement-2, as in
Macháček et al., "Turning Whisper into Real-Time Transcription System", 2023, and
whisper_streaming). Words already shown are never retracted by a partial; the turn's final
transcript, decoded once it ends, is the truth, and only differs from what was shown where
the decodes' agreement was wrong.
"""

from __future__ import annotations

import re

_NOT_WORD = re.compile(r"[^\w']+")


def _key(word: str) -> str:
    # Agreement ignores case and punctuation: "hello" and "Hello," are the same word said.
    return _NOT_WORD.sub("", word.lower())


class LocalAgreement:
    """The stable words of one turn's successive hypotheses."""

    def __init__(self) -> None:
        self._previous: list[str] = []
        self.shown: list[str] = []  # words already sent, in the form they were sent

    def update(self, hypothesis: str) -> str:
        """The text newly agreed on after this ``hypothesis`` (a delta to send; "" if none)."""
        words = hypothesis.split()
        agreed = 0
        for before, now in zip(self._previous, words, strict=False):
            if _key(before) != _key(now):
                break
            agreed += 1
        self._previous = words
        if agreed <= len(self.shown) or [_key(w) for w in words[: len(self.shown)]] != [_key(w) for w in self.shown]:
            return ""
        new = words[len(self.shown) : agreed]
        return self._show(new)

    def finish(self, final: str) -> str | None:
        """What to send to complete the shown text into ``final``; None when ``final`` does not
        start with the shown words (a partial was wrong: the final transcript corrects it)."""
        words = final.split()
        if [_key(w) for w in words[: len(self.shown)]] != [_key(w) for w in self.shown] or len(words) < len(self.shown):
            return None
        if self.shown and words[: len(self.shown)] != self.shown:
            return None  # the same words, spelt differently: a delta cannot rewrite them
        return self._show(words[len(self.shown) :])

    def _show(self, words: list[str]) -> str:
        if not words:
            return ""
        text = (" " if self.shown else "") + " ".join(words)
        self.shown.extend(words)
        return text
