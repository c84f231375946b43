"""Naming diarized speakers after reference clips: the matching rules, with an embedding that
knows each voice exactly. Real voices: bench/known_speakers.py and tests/e2e/test_known_speakers_server.py."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.speakers.known import KnownSpeaker, name_speakers
from app.transcript import SpeakerTurn

pytestmark = pytest.mark.unit

RATE = 16_000
THRESHOLD = 0.8


def embed(clips: list[np.ndarray]) -> np.ndarray:
    """Voice v is audio of constant value v / 10; its embedding, a direction of its own (8 voices)."""
    rows = []
    for clip in clips:
        voice = round(float(np.median(clip)) * 10)
        row = np.full(8, 0.05)
        row[voice] = 1.0
        rows.append(row)
    return np.array(rows)


def recording(*spans: tuple[float, float, int]) -> np.ndarray:
    """Audio where voice v speaks (start, end, v)."""
    audio = np.zeros(int(max(end for _, end, _ in spans) * RATE) + RATE, dtype=np.float32)
    for start, end, voice in spans:
        audio[int(start * RATE) : int(end * RATE)] = voice / 10
    return audio


def reference(name: str, voice: int) -> KnownSpeaker:
    return KnownSpeaker(name, np.full(3 * RATE, voice / 10, dtype=np.float32))


def labels(turns: list[SpeakerTurn]) -> list[str]:
    return [turn.speaker for turn in turns]


CALL = [(0.0, 3.0, 1), (3.5, 6.0, 2), (6.5, 9.0, 1), (9.5, 12.0, 2)]  # voices 1 and 2 take turns
TURNS = [SpeakerTurn(s, e, f"SPEAKER_0{v - 1}") for s, e, v in CALL]


def test_each_known_voice_names_its_speaker():
    named, matches = name_speakers(
        recording(*CALL), TURNS, [reference("Bob", 2), reference("Ann", 1)], embed, THRESHOLD
    )
    assert labels(named) == ["Ann", "Bob", "Ann", "Bob"]
    assert {(m.speaker, m.name) for m in matches} == {("SPEAKER_00", "Ann"), ("SPEAKER_01", "Bob")}
    assert all(m.similarity > 0.99 for m in matches)


def test_a_voice_without_a_reference_keeps_its_label_and_an_absent_voice_names_nobody():
    named, matches = name_speakers(
        recording(*CALL), TURNS, [reference("Ann", 1), reference("Eve", 5)], embed, THRESHOLD
    )
    assert labels(named) == ["Ann", "SPEAKER_01", "Ann", "SPEAKER_01"]
    assert [m.name for m in matches] == ["Ann"]


def test_two_voices_the_diarizer_merged_are_told_apart_by_their_references():
    merged = [SpeakerTurn(t.start, t.end, "SPEAKER_00") for t in TURNS]
    named, _ = name_speakers(recording(*CALL), merged, [reference("Ann", 1), reference("Bob", 2)], embed, THRESHOLD)
    assert labels(named) == ["Ann", "Bob", "Ann", "Bob"]


def test_a_merged_unknown_voice_does_not_take_the_known_ones_name():
    merged = [SpeakerTurn(t.start, t.end, "SPEAKER_00") for t in TURNS]
    named, _ = name_speakers(recording(*CALL), merged, [reference("Ann", 1)], embed, THRESHOLD)
    assert labels(named) == ["Ann", "SPEAKER_00", "Ann", "SPEAKER_00"]


def test_a_turn_too_short_to_judge_follows_its_speaker():
    spans = [*CALL, (12.5, 12.9, 2)]  # 0.4 s of voice 2
    turns = [*TURNS, SpeakerTurn(12.5, 12.9, "SPEAKER_01")]
    named, _ = name_speakers(recording(*spans), turns, [reference("Ann", 1), reference("Bob", 2)], embed, THRESHOLD)
    assert labels(named)[-1] == "Bob"


def test_no_turns_or_no_references_change_nothing():
    assert name_speakers(recording(*CALL), [], [reference("Ann", 1)], embed, THRESHOLD) == ([], [])
    assert name_speakers(recording(*CALL), TURNS, [], embed, THRESHOLD) == (TURNS, [])


def test_a_voice_the_diarizer_split_in_two_takes_its_name_on_both_parts():
    split = [SpeakerTurn(0.0, 3.0, "SPEAKER_00"), TURNS[1], SpeakerTurn(6.5, 9.0, "SPEAKER_02"), TURNS[3]]
    named, matches = name_speakers(recording(*CALL), split, [reference("Ann", 1)], embed, THRESHOLD)
    assert labels(named) == ["Ann", "SPEAKER_01", "Ann", "SPEAKER_01"]
    assert sorted(m.speaker for m in matches) == ["SPEAKER_00", "SPEAKER_02"]


def _wav_file(path, seconds: float, rate: int) -> None:
    import wave

    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        tone = np.sin(np.arange(int(seconds * 16000)) * 0.2) * 12000
        file.writeframes(tone.astype("<i2").tobytes())


@pytest.mark.parametrize(
    ("rate", "says"),
    [
        (16000, "is 0.2 s long, too short to know a voice by"),
        # The same 0.22 s of samples under a header that says 100 Hz: 35 s by its word.
        (100, "is longer than 10 s (its header says 35 s)"),
    ],
)
def test_a_short_clip_is_refused_for_what_it_is(tmp_path, rate, says):
    from app.engine.speakers.references import decode_reference_file
    from app.errors import InvalidParameter

    clip = tmp_path / "clip.wav"
    _wav_file(clip, 0.22, rate)
    with pytest.raises(InvalidParameter) as refused:
        decode_reference_file(clip, "The clip", "file", timeout_s=30, ffmpeg="ffmpeg")
    assert says in refused.value.message
