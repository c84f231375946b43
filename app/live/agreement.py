"""Partial text of an open turn that will not be taken back: the stable prefix of its decodes.

Each partial decode of a growing turn may rewrite its last words: the audio ends in the middle
of them, with no right context. A word is shown once

- two successive decodes agree on it and on every word before it (LocalAgreement-2, as in
  Macháček et al., "Turning Whisper into Real-Time Transcription System", 2023, and
  whisper_streaming), or
- one decode has ``HELD_WORDS`` words after it: a word that far from the end of the audio is
  rarely rewritten, and waiting for a second decode costs a partial interval, or more when
  other sessions' partials are queued (what the first delta waits for under load).

Words already shown are never retracted by a partial; the turn's final transcript, decoded once
it ends, is the truth, and only differs from what was shown where the rule was wrong.
Measured with ``bench/realtime_latency.py --smoke`` (docs/performance.md): holding 3 words
brought the first delta about 0.4 s earlier (p50, mean of runs) with the partials' WER
unchanged; holding 2 doubled their WER.
"""

from __future__ import annotations

import re

_NOT_WORD = re.compile(r"[^\w']+")
HELD_WORDS = 3  # one decode's words shown, but for its last three


def _key(word: str) -> str:
    # Agreement ignores case and punctuation: "hello" and "Hello," are the same word said.
    return _NOT_WORD.sub("", word.lower())


class StablePrefix:
    """The stable words of one turn's successive hypotheses."""

    def __init__(self, held_words: int = HELD_WORDS) -> None:
        self._held_words = held_words
        self._previous: list[str] = []
        self.shown: list[str] = []  # words already sent, in the form they were sent

    def update(self, hypothesis: str) -> str:
        """The text newly stable after this ``hypothesis`` (a delta to send; "" if none)."""
        words = hypothesis.split()
        agreed = 0
        for before, now in zip(self._previous, words, strict=False):
            if _key(before) != _key(now):
                break
            agreed += 1
        self._previous = words
        stable = max(agreed, len(words) - self._held_words)
        if stable <= len(self.shown) or [_key(w) for w in words[: len(self.shown)]] != [_key(w) for w in self.shown]:
            return ""
        return self._show(words[len(self.shown) : stable])

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
