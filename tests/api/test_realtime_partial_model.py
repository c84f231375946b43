"""REALTIME_PARTIAL_MODEL: live partials decoded by a cheaper model, committed turns by the session's."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from app.engine.decoding import Urgency
from tests.api.conftest import FakePipeline

URL = "/v1/realtime?intent=transcription"


@pytest.fixture
def fake_pipeline() -> FakePipeline:
    return FakePipeline(more_models=("fake-turbo", "fake-tiny.en"))


@pytest.fixture(scope="module")
def call_pcm24(sample_wav) -> bytes:
    from faster_whisper.audio import decode_audio

    audio = decode_audio(str(sample_wav), sampling_rate=24000)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def _models_of_one_turn(client: Any, pcm: bytes, transcription: dict[str, Any]) -> None:
    with client.websocket_connect(URL) as ws:
        assert ws.receive_json()["type"] == "session.created"
        ws.send_json({"type": "session.update", "session": {"audio": {"input": {"transcription": transcription}}}})
        while ws.receive_json()["type"] != "session.updated":
            pass
        for at in range(0, len(pcm), 9600):
            ws.send_json({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[at : at + 9600]).decode()})
        while ws.receive_json()["type"] != "conversation.item.input_audio_transcription.completed":
            pass


def _used(fake: FakePipeline, urgency: Urgency) -> set[str]:
    return {model for used, model in fake.models_used if used is urgency}


@pytest.mark.parametrize(
    ("partial_model", "transcription", "partials", "turns"),
    [
        ("fake-turbo", {}, "fake-turbo", "fake-whisper"),
        ("fake-tiny.en", {"language": "en"}, "fake-tiny.en", "fake-whisper"),
        # English-only, and the language not known to be English: the session's model
        ("fake-tiny.en", {"language": "de"}, "fake-whisper", "fake-whisper"),
        # a session that names its model keeps it for its partials too
        ("fake-tiny.en", {"language": "en", "model": "fake-turbo"}, "fake-turbo", "fake-turbo"),
        (None, {}, "fake-whisper", "fake-whisper"),
    ],
    ids=["multilingual", "english-only-in-english", "english-only-in-german", "session-model", "none"],
)
def test_partials_use_the_partial_model_and_turns_the_sessions(
    make_client, ready_state, fake_pipeline, call_pcm24, partial_model, transcription, partials, turns
):
    state = ready_state()
    state.partial_model = partial_model
    client = make_client(state=state)
    turn = call_pcm24[: 24000 * 2 * 16] + bytes(24000 * 2)  # the call's first turns (from 6.7 s), then silence
    _models_of_one_turn(client, turn, transcription)
    assert _used(fake_pipeline, Urgency.PARTIAL) == {partials}
    assert _used(fake_pipeline, Urgency.TURN) == {turns}
    assert client.get("/health").json()["queue"]["realtime"]["partial_model"] == partial_model
