"""Who said each word and each segment: WhisperX's rule (``whisperx.assign_word_speakers``),
without importing whisperx's diarization module, which imports pyannote.audio (and Lightning,
torchmetrics, ``torch._dynamo``: seconds) on the first request that wants speakers.

The rule: the speaker whose turns overlap the word (or segment) the longest in total; among
equals, the one whose overlapping turn starts first; no overlap, no speaker.
tests/unit/test_speaker_assignment.py checks it against WhisperX's own.
"""

from __future__ import annotations

import numpy as np

from app.transcript import Segment, SpeakerTurn


class TurnIndex:
    """Speaker turns sorted by start, for overlap queries that look only at turns that can overlap."""

    def __init__(self, turns: list[SpeakerTurn]) -> None:
        ordered = sorted(turns, key=lambda turn: turn.start)  # stable, as WhisperX sorts them
        self.starts = np.array([turn.start for turn in ordered], dtype=np.float64)
        self.ends = np.array([turn.end for turn in ordered], dtype=np.float64)
        self.speakers = [turn.speaker for turn in ordered]
        # A turn that starts more than the longest turn's length before a span ends before it.
        self.longest = float(np.max(self.ends - self.starts, initial=0.0))

    def speaker(self, start: float, end: float) -> str | None:
        """The speaker who overlaps [start, end] the longest, or None."""
        first = int(np.searchsorted(self.starts, start - self.longest, side="left"))
        last = int(np.searchsorted(self.starts, end, side="left"))
        totals: dict[str, float] = {}
        for index in range(first, last):
            overlap = min(self.ends[index], end) - max(self.starts[index], start)
            if self.ends[index] > start and overlap > 0:
                speaker = self.speakers[index]
                totals[speaker] = totals.get(speaker, 0.0) + float(overlap)
        return max(totals.items(), key=lambda item: item[1])[0] if totals else None


def assign_speakers(segments: list[Segment], turns: list[SpeakerTurn]) -> None:
    """Label words and segments with the speaker they overlap most (WhisperX's rule)."""
    if not turns or not segments:
        return
    index = TurnIndex(turns)
    for segment in segments:
        segment.speaker = index.speaker(segment.start, segment.end)
        for word in segment.words:
            word.speaker = index.speaker(word.start, word.end)
