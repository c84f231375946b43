"""Known speakers in a live session, with the fake pipeline: how ``session.update`` takes them
(clips, or names from the voice book), what it refuses, and the name on ``completed``.
Telling real voices apart is tests/e2e/test_realtime_speakers.py's."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from tests.api.conftest import FakePipeline
from tests.support.clips import data_url, wav

pytestmark = pytest.mark.api

URL = "/v1/realtime?intent=transcription"
PARAM = "session.audio.input.transcription."


class OneVoice:
    """A diarizer whose embedding model hears one voice in everything."""

    name, device, same_voice = "fake", "cpu", 0.6

    def embed(self, clips: list[np.ndarray]) -> np.ndarray:
        return np.ones((len(clips), 4), dtype=np.float32)


@pytest.fixture
def fake_pipeline() -> FakePipeline:
    fake = FakePipeline()
    fake.diarizer = OneVoice()
    return fake


def _update(ws: Any, transcription: dict[str, Any]) -> dict[str, Any]:
    """Send a session.update (16 kHz, manual commits); the session.updated or error it gets."""
    session = {"format": {"type": "audio/pcm", "rate": 16000}, "transcription": transcription, "turn_detection": None}
    ws.send_json({"type": "session.update", "session": {"type": "transcription", "audio": {"input": session}}})
    return ws.receive_json()


def _commit_speech(ws: Any) -> dict[str, Any]:
    pcm = (np.frombuffer(wav(4.0)[44:], dtype="<i2")).tobytes()
    ws.send_json({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()})
    ws.send_json({"type": "input_audio_buffer.commit"})
    while (event := ws.receive_json())["type"] != "conversation.item.input_audio_transcription.completed":
        assert event["type"] != "conversation.item.input_audio_transcription.failed", event
    return event


def test_a_known_speaker_with_its_clip_names_the_turns_speakers(client):
    with client.websocket_connect(URL) as ws:
        assert ws.receive_json()["type"] == "session.created"
        updated = _update(ws, {"known_speaker_names": ["Ann"], "known_speaker_references": [data_url(wav(4.0))]})
        assert updated["type"] == "session.updated", updated
        transcription = updated["session"]["audio"]["input"]["transcription"]
        assert transcription["known_speaker_names"] == ["Ann"] and transcription["diarize"] is True
        assert "known_speaker_references" not in transcription, "a clip is never echoed back"
        completed = _commit_speech(ws)
    assert {w["speaker"] for w in completed["words"]} == {"Ann"}
    assert {s["speaker"] for s in completed["segments"]} == {"Ann"}


CLIP = data_url(wav(4.0))
REFUSED = [
    (
        {"known_speaker_names": ["Ann"], "known_speaker_references": [data_url(wav(0.5))]},
        "known_speaker_references",
        "too short",
    ),
    (
        {"known_speaker_names": ["Ann"], "known_speaker_references": ["data:audio/wav;base64,@@"]},
        "known_speaker_references",
        "base64",
    ),
    ({"known_speaker_names": ["Ann"]}, "known_speaker_references", "Ann"),  # not in the voice book
    (
        {"known_speaker_names": ["Ann", "Bo"], "known_speaker_references": [CLIP] * 3},
        None,
        "3 known_speaker_references",
    ),
    ({"known_speaker_names": ["Ann\nBo"], "known_speaker_references": [CLIP]}, "known_speaker_names.0", ""),
    (
        {"known_speaker_names": ["Ann"], "known_speaker_references": [CLIP], "diarize": False},
        "diarize",
        "diarize is false",
    ),
]


@pytest.mark.parametrize(("transcription", "param", "says"), REFUSED)
def test_known_speakers_it_cannot_use_are_refused_and_change_nothing(client, transcription, param, says):
    with client.websocket_connect(URL) as ws:
        assert ws.receive_json()["type"] == "session.created"
        refused = _update(ws, transcription)
        assert refused["type"] == "error", refused
        assert says in refused["error"]["message"], refused
        if param is not None:
            assert refused["error"]["param"].startswith(PARAM + param), refused
        after = _update(ws, {"language": "en"})
        assert after["session"]["audio"]["input"]["transcription"]["known_speaker_names"] == []
        assert {w["speaker"] for w in _commit_speech(ws)["words"]} == {None}


def test_a_name_alone_takes_its_clip_from_the_tenants_voice_book(make_jobs_client):
    client = make_jobs_client()
    stored = client.post("/v1/speakers", data={"name": "Ann"}, files={"file": ("a.wav", wav(4.0), "audio/wav")})
    assert stored.status_code == 201, stored.text
    with client.websocket_connect(URL) as ws:
        assert ws.receive_json()["type"] == "session.created"
        assert _update(ws, {"known_speaker_names": ["Ann"]})["type"] == "session.updated"
        assert {w["speaker"] for w in _commit_speech(ws)["words"]} == {"Ann"}
