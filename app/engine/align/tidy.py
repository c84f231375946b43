"""Word times every client can use: each word inside the file, in order, start ≤ end."""

from __future__ import annotations

import math

from app.transcript import Segment


def tidy_times(segments: list[Segment], duration: float) -> list[Segment]:
    """Give every word a start and end inside the file, in order, with start ≤ end.

    The aligner leaves words it cannot place (digits, symbols) without times, and CTC or
    attention alignments can slightly overlap between segments; clients should not have
    to handle either.
    """
    previous_start = 0.0
    for segment in segments:
        words = segment.words
        for index, word in enumerate(words):
            if math.isnan(word.start):
                word.start = words[index - 1].end if index > 0 else segment.start
            if math.isnan(word.end):
                following = next((w.start for w in words[index + 1 :] if not math.isnan(w.start)), segment.end)
                word.end = following
            word.start = min(max(word.start, previous_start, 0.0), duration)
            word.end = min(max(word.end, word.start), duration)
            previous_start = word.start
        if words:
            segment.start, segment.end = words[0].start, max(w.end for w in words)
        segment.start = min(max(segment.start, 0.0), duration)
        segment.end = min(max(segment.end, segment.start), duration)
    return segments
