"""How a live session's turns are decoded: REALTIME_PARTIAL_MODEL (partials by a cheaper model,
committed turns by the session's) and the session's temperature schedule (ours)."""

from __future__ import annotations

from typing import Any

import pytest

from app.engine.decoding import Urgency
from app.engine.whisper.fallback import TEMPERATURES
from tests.api.conftest import FakePipeline
from tests.support.live_testclient import append_pcm, events_until, live_session


@pytest.fixture
def fake_pipeline() -> FakePipeline:
    return FakePipeline(more_models=("fake-turbo", "fake-tiny.en"))


def _play_one_turn(client: Any, pcm: bytes, transcription: dict[str, Any]) -> None:
    with live_session(client) as ws:
        ws.send_json({"type": "session.update", "session": {"audio": {"input": {"transcription": transcription}}}})
        events_until(ws, "session.updated")
        append_pcm(ws, pcm)
        events_until(ws, "conversation.item.input_audio_transcription.completed")


def _decodes(fake: FakePipeline, urgency: Urgency) -> list[Any]:
    """The options of each decode of this ``urgency`` (partials, committed turns)."""
    return [options for used, (_, options) in zip(fake.urgencies, fake.calls, strict=True) if used is urgency]


def _used(fake: FakePipeline, urgency: Urgency) -> set[str]:
    return {options.model or fake.model_name for options in _decodes(fake, urgency)}


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
    _play_one_turn(client, turn, transcription)
    assert _used(fake_pipeline, Urgency.PARTIAL) == {partials}
    assert _used(fake_pipeline, Urgency.TURN) == {turns}
    assert client.get("/health").json()["queue"]["realtime"]["partial_model"] == partial_model


@pytest.mark.parametrize(
    ("temperature", "schedule"), [(None, TEMPERATURES), ([0], (0.0,)), (0.4, (0.4,)), ([0, 0.6], (0.0, 0.6))]
)
def test_a_session_sets_its_turns_temperature_schedule(client, fake_pipeline, call_pcm24, temperature, schedule):
    """Ours, as on /transcribe: ``[0]`` is one pass (no sampling retries), the fastest final."""
    transcription = {} if temperature is None else {"temperature": temperature}
    _play_one_turn(client, call_pcm24[: 24000 * 2 * 16] + bytes(24000 * 2), transcription)
    turns, partials = _decodes(fake_pipeline, Urgency.TURN), _decodes(fake_pipeline, Urgency.PARTIAL)
    assert turns and {o.checks.temperatures for o in turns} == {schedule}
    assert {o.checks.temperatures for o in partials} == {(0.0,)}  # a partial is always one pass


@pytest.mark.parametrize("temperature", [1.5, [], [0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0], "hot"])
def test_a_temperature_out_of_range_is_an_error_event(client, temperature):
    with live_session(client) as ws:
        transcription = {"temperature": temperature}
        ws.send_json({"type": "session.update", "session": {"audio": {"input": {"transcription": transcription}}}})
        event = ws.receive_json()
    assert event["type"] == "error"
    assert event["error"]["param"].startswith("session.audio.input.transcription.temperature")
