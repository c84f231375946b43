"""Speakers in a live session, on the real server (bundled base, the offline diarizer with CAM++):
the sample call's two real voices, cut apart by its reference turns, committed turn by turn."""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path

import httpx
import openai
import pytest

from app.engine.speakers.references import wav_bytes
from tests.support.live_player import COMPLETED, pcm16, sdk_events

RATE = 16000
# Each voice alone (sample.rttm: speaker90 and speaker91, where neither overlaps the other).
TURNS = ((11.05, 14.45), (14.75, 17.90), (18.60, 21.45), (21.80, 24.20))  # speaker90, 91, 90, 91
SPEAKER91_ALONE = (24.30, 27.80)  # a reference clip of speaker91 that no turn plays


@pytest.fixture(scope="module")
def call(sample_wav: Path) -> bytes:
    return pcm16(sample_wav, rate=RATE)


def _cut(call: bytes, start: float, end: float) -> bytes:
    return call[int(start * RATE) * 2 : int(end * RATE) * 2]


def _turn_speakers(sdk: openai.OpenAI, call: bytes, transcription: dict) -> list[dict]:
    """Each turn of TURNS committed in one session; per turn, its completed event's words' speakers."""
    session = {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": RATE},
                "transcription": {"model": "whisper-1", "language": "en", **transcription},
                "turn_detection": None,
            }
        },
    }
    finals = []
    with sdk.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        connection.session.update(session=session)
        for start, end in TURNS:
            connection.input_audio_buffer.append(audio=base64.b64encode(_cut(call, start, end)).decode())
            connection.input_audio_buffer.commit()
        for event in sdk_events(connection, 600, "every turn's completed event"):
            if event.type in ("error", "conversation.item.input_audio_transcription.failed"):
                pytest.fail(str(event))
            if event.type == "session.updated":
                assert event.session.model_dump()["audio"]["input"]["transcription"]["diarize"] is True
            if event.type == COMPLETED:
                finals.append(event.model_dump())
                if len(finals) == len(TURNS):
                    break
    return [Counter(w["speaker"] for w in final["words"]) for final in finals]


def _label(speakers: Counter) -> str:
    (label, _), *_ = speakers.most_common(1)
    return label


def test_each_voice_keeps_its_label_across_turns(sdk, call):
    turns = _turn_speakers(sdk, call, {"diarize": True})
    labels = [_label(t) for t in turns]
    assert all(label and label.startswith("SPEAKER_") for label in labels), turns
    assert labels[0] == labels[2] and labels[1] == labels[3] and labels[0] != labels[1], turns
    # Every word of a turn of one voice has that voice's label (or none: a word the diarizer
    # heard no speech under, as in a file's transcript).
    assert all(set(t) - {None} == {label} for t, label in zip(turns, labels, strict=True)), turns


def test_a_known_speaker_from_the_voice_book_is_named_in_completed(sdk, server, call):
    clip = wav_bytes(_samples(_cut(call, *SPEAKER91_ALONE)))
    with httpx.Client(base_url=server.url, timeout=120) as http:
        stored = http.post("/v1/speakers", data={"name": "Dana"}, files={"file": ("dana.wav", clip, "audio/wav")})
        assert stored.status_code == 201, stored.text
        try:
            turns = _turn_speakers(sdk, call, {"known_speaker_names": ["Dana"]})
        finally:
            http.delete("/v1/speakers/Dana")
    labels = [_label(t) for t in turns]
    assert labels[1] == labels[3] == "Dana", turns
    assert labels[0] == labels[2] and labels[0].startswith("SPEAKER_"), turns


def _samples(pcm: bytes):
    import numpy as np

    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
