"""A live session's speaker labels (app/live/speakers.py) with an embedding that knows each
voice by its clip's level: the rules, without a model. Real voices: tests/e2e/test_realtime_speakers.py."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.speakers.known import KnownSpeaker
from app.live.speakers import SessionSpeakers, turn_threshold
from app.transcript import DiarizationReport, Segment, SpeakerTurn, Transcript, Word

pytestmark = pytest.mark.unit

RATE = 16000
# Voice n is a clip at level n / 10; its embedding is axis n (voices 1 and 2 share a little).
DIRECTIONS = {1: [1.0, 0.0, 0.0], 2: [0.3, 1.0, 0.0], 3: [0.0, 0.0, 1.0]}


def embed(clips: list[np.ndarray]) -> np.ndarray:
    rows = []
    for clip in clips:
        if len(clip) < RATE // 2:
            rows.append([np.nan] * 3)
        else:
            rows.append(DIRECTIONS[round(float(np.median(clip)) * 10)])
    return np.array(rows, dtype=np.float32)


def clip(voice: int, seconds: float) -> np.ndarray:
    return np.full(int(seconds * RATE), voice / 10, dtype=np.float32)


def turn(*parts: tuple[int, float]) -> tuple[np.ndarray, Transcript]:
    """A committed turn of ``(voice, seconds)`` parts, diarized with the turn's own labels, one word each."""
    audio, turns, segments, at = [], [], [], 0.0
    for index, (voice, seconds) in enumerate(parts):
        audio.append(clip(voice, seconds))
        label = f"SPEAKER_{index:02d}"
        turns.append(SpeakerTurn(at, at + seconds, label))
        segments.append(Segment(at, at + seconds, "word", words=[Word("word", at, at + seconds, 0.9)]))
        at += seconds
    report = DiarizationReport(requested=True, performed=True, turns=turns)
    return np.concatenate(audio), Transcript(at, "en", 1.0, segments, None, report)


def labels(speakers: SessionSpeakers, *parts: tuple[int, float]) -> list[str | None]:
    audio, transcript = turn(*parts)
    speakers.label(audio, transcript, embed, turn_threshold(0.6))
    assert [s.speaker for s in transcript.segments] == [w.speaker for w in transcript.words]
    return [w.speaker for w in transcript.words]


def test_a_voice_keeps_its_label_across_turns_and_a_new_voice_gets_the_next():
    speakers = SessionSpeakers()
    assert labels(speakers, (1, 3.0)) == ["SPEAKER_00"]
    assert labels(speakers, (2, 2.0), (1, 2.0)) == ["SPEAKER_01", "SPEAKER_00"]
    assert labels(speakers, (3, 2.0)) == ["SPEAKER_02"]
    assert labels(speakers, (1, 2.0), (3, 2.0), (2, 2.0)) == ["SPEAKER_00", "SPEAKER_02", "SPEAKER_01"]


def test_known_speakers_are_named_and_reported_and_others_keep_session_labels():
    speakers = SessionSpeakers()
    speakers.set_known([KnownSpeaker("Ann", clip(2, 4.0))])
    audio, transcript = turn((1, 2.0), (2, 2.0))
    speakers.label(audio, transcript, embed, turn_threshold(0.6))
    assert [w.speaker for w in transcript.words] == ["SPEAKER_00", "Ann"]
    [match] = transcript.diarization.known_speakers
    assert (match.name, match.speaker, match.similarity) == ("Ann", "SPEAKER_01", 1.0)
    assert labels(speakers, (2, 3.0), (1, 1.5)) == ["Ann", "SPEAKER_00"]
    speakers.set_known([])  # the client stops naming her: her next turn is a voice of its own
    assert labels(speakers, (2, 3.0)) == ["SPEAKER_01"]


def test_a_voice_too_short_to_tell_takes_the_label_of_who_spoke_before():
    speakers = SessionSpeakers()
    # The session's first speaker says too little: a label that the first voice heard then takes.
    assert labels(speakers, (3, 0.3)) == ["SPEAKER_00"]
    assert labels(speakers, (1, 2.0)) == ["SPEAKER_00"]
    assert labels(speakers, (2, 2.0), (3, 0.3)) == ["SPEAKER_01", "SPEAKER_01"]
    assert labels(speakers, (1, 2.0)) == ["SPEAKER_00"]


def test_an_undiarized_transcript_is_left_alone():
    speakers = SessionSpeakers()
    audio, transcript = turn((1, 2.0))
    transcript.diarization.performed = False
    speakers.label(audio, transcript, embed, turn_threshold(0.6))
    assert [w.speaker for w in transcript.words] == [None]
