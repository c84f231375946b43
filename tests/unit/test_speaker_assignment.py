"""Words and segments get the speaker WhisperX's assign_word_speakers gives them, without its
module (which imports pyannote.audio): random conversations with overlaps, gaps and ties."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from app.engine.speakers.assignment import assign_speakers
from app.transcript import Segment, SpeakerTurn, Word


def conversation(seed: int) -> tuple[list[Segment], list[SpeakerTurn]]:
    rng = np.random.default_rng(seed)
    turns, t = [], 0.0
    for _ in range(int(rng.integers(1, 40))):
        t += float(rng.choice([0.0, rng.uniform(-1.0, 2.0)]))  # back to back, overlapping or after a gap
        length = float(rng.choice([rng.uniform(0.05, 8.0), 1.0]))  # equal lengths make ties
        turns.append(SpeakerTurn(max(0.0, t), max(0.0, t) + length, f"SPEAKER_{rng.integers(0, 4):02d}"))
        t += length
    segments, t = [], 0.0
    for _ in range(int(rng.integers(1, 12))):
        words, start = [], t
        for _ in range(int(rng.integers(0, 10))):
            length = float(rng.uniform(0.0, 0.8))
            words.append(Word("w", t, t + length))
            t += length + float(rng.choice([0.0, rng.uniform(0.0, 1.5)]))
        segments.append(Segment(start, max(t, start + 0.1), "text", words))
        t += float(rng.uniform(0.0, 3.0))
    return segments, turns


def whisperx_labels(segments: list[Segment], turns: list[SpeakerTurn]) -> list:
    from whisperx.diarize import assign_word_speakers

    frame = pd.DataFrame([{"start": t.start, "end": t.end, "speaker": t.speaker} for t in turns])
    result = assign_word_speakers(
        frame,
        {"segments": [{"start": s.start, "end": s.end, "words": [{"start": w.start, "end": w.end} for w in s.words]}
                      for s in segments]},
    )  # fmt: skip
    return [(s.get("speaker"), [w.get("speaker") for w in s["words"]]) for s in result["segments"]]


@pytest.mark.parametrize("seed", range(60))
def test_the_same_speakers_as_whisperx(seed):
    segments, turns = conversation(seed)
    expected = whisperx_labels(segments, turns)
    labelled = copy.deepcopy(segments)
    assign_speakers(labelled, turns)
    assert [(s.speaker, [w.speaker for w in s.words]) for s in labelled] == expected


def test_no_turns_leaves_the_transcript_alone():
    segments, _ = conversation(1)
    before = copy.deepcopy(segments)
    assign_speakers(segments, [])
    assert segments == before
