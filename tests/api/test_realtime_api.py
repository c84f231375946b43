"""/v1/realtime against the fake pipeline: the protocol's edges, keys, limits and the shutdown.

Turn finding (Silero) is real and runs on the real sample call; what the fake pipeline
"transcribes" is always "Hello there. Hi.".
"""

from __future__ import annotations

import base64
import json
import random
import time
from typing import Any

import pytest
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from app.engine.decoding import Urgency
from tests.support.live_testclient import URL, append_pcm, events_until, live_session
from tests.support.metrics import metric_samples
from tests.support.waiting import wait_for

KEY = "live-test-key-0123456789"


def _refusal(ws: WebSocketTestSession) -> tuple[dict[str, Any], int]:
    event = ws.receive_json()
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    return event, closed.value.code


def test_server_vad_finds_the_turns_of_a_real_call(client, fake_pipeline, call_pcm24):
    with live_session(client) as ws:
        ws.send_json({"type": "session.update", "session": {"type": "transcription"}})
        updated = events_until(ws, "session.updated")[-1]["session"]
        assert updated["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        append_pcm(ws, call_pcm24 + bytes(24000 * 2))  # and one second of silence after it
        events = events_until(ws, "conversation.item.input_audio_transcription.completed")
    kinds = [e["type"] for e in events]
    started = kinds.index("input_audio_buffer.speech_started")
    assert kinds.index("input_audio_buffer.speech_stopped") > started
    committed = events[kinds.index("input_audio_buffer.committed")]
    completed = events[-1]
    assert committed["item_id"] == events[started]["item_id"] == completed["item_id"]
    assert committed["previous_item_id"] is None
    assert 6000 <= events[started]["audio_start_ms"] <= 7000  # the call's first word is at 6.7 s
    assert completed["transcript"] == "Hello there. Hi." and completed["content_index"] == 0
    assert completed["usage"]["type"] == "duration" and completed["usage"]["seconds"] > 0
    words = completed["words"]
    assert [w["word"] for w in words] == ["Hello", "there.", "Hi."]
    assert all(w["start"] >= events[started]["audio_start_ms"] / 1000 for w in words), "times are the session's"
    # The open turn was decoded as it came in: partial decodes, queued as partials (behind turns),
    # on windows of the audio so far; the committed turn's decode, on full windows.
    runs = set(zip(fake_pipeline.urgencies, fake_pipeline.short_windows, strict=True))
    assert runs == {(Urgency.PARTIAL, True), (Urgency.TURN, False)}


def test_manual_commits_at_16_khz_with_logprobs(client, call_pcm24):
    session = {
        "type": "transcription",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None}},
        "include": ["item.input_audio_transcription.logprobs"],
    }
    with live_session(client) as ws:
        ws.send_json({"type": "session.update", "session": session})
        updated = events_until(ws, "session.updated")[-1]["session"]
        assert updated["audio"]["input"]["turn_detection"] is None
        assert updated["audio"]["input"]["format"]["rate"] == 16000
        append_pcm(ws, call_pcm24[: 24000 * 2 * 5])
        ws.send_json({"type": "input_audio_buffer.commit", "event_id": "mine"})
        events = events_until(ws, "conversation.item.input_audio_transcription.completed")
        assert [e["type"] for e in events] == [
            "input_audio_buffer.committed",
            "conversation.item.input_audio_transcription.delta",
            "conversation.item.input_audio_transcription.completed",
        ]
        assert events[1]["delta"] == events[2]["transcript"] == "Hello there. Hi."
        assert [entry["token"] for entry in events[2]["logprobs"]] == ["Hello there.", "Hi."]
        assert events[2]["usage"]["seconds"] == pytest.approx(7.5, abs=0.01)  # 5 s at 24 kHz read as 16 kHz
        ws.send_json({"type": "input_audio_buffer.commit", "event_id": "again"})
        empty = ws.receive_json()
        assert empty["error"]["code"] == "input_audio_buffer_commit_empty" and empty["error"]["event_id"] == "again"
        append_pcm(ws, call_pcm24[:9600])
        ws.send_json({"type": "input_audio_buffer.clear"})
        assert ws.receive_json()["type"] == "input_audio_buffer.cleared"
        ws.send_json({"type": "input_audio_buffer.commit"})
        assert ws.receive_json()["error"]["code"] == "input_audio_buffer_commit_empty"


def test_a_committed_turn_is_queued_first_and_counted_once(client, fake_pipeline, call_pcm24):
    """Live audio goes through the Transcriber: a committed turn's decode goes first in Whisper's
    queue, and /metrics counts its audio once (partial decodes are not counted)."""
    session = {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}, "turn_detection": None}}}
    with live_session(client) as ws:
        ws.send_json({"type": "session.update", "session": session})
        events_until(ws, "session.updated")
        append_pcm(ws, call_pcm24[: 16000 * 2 * 4])
        ws.send_json({"type": "input_audio_buffer.commit"})
        events_until(ws, "conversation.item.input_audio_transcription.completed")
    assert fake_pipeline.urgencies == [Urgency.TURN]
    samples = metric_samples(client)
    assert samples[("transcription_audio_seconds_total", (("task", "transcribe"),))] == pytest.approx(4.0, abs=0.01)
    assert samples[("transcription_stage_seconds_count", (("stage", "asr"),))] == 1


def test_keywords_are_hotwords_of_every_decode(client, fake_pipeline, call_pcm24):
    transcription = {"keywords": ["Kubernetes", "Grafana"], "language": "en"}
    session = {"audio": {"input": {"turn_detection": None, "transcription": transcription}}}
    with live_session(client) as ws:
        ws.send_json({"type": "session.update", "session": session})
        assert events_until(ws, "session.updated")[-1]["session"]["audio"]["input"]["transcription"]["keywords"] == [
            "Kubernetes",
            "Grafana",
        ]
        append_pcm(ws, call_pcm24[:48000])
        ws.send_json({"type": "input_audio_buffer.commit"})
        events_until(ws, "conversation.item.input_audio_transcription.completed")
    _, options = fake_pipeline.calls[-1]
    assert options.hotwords == "Kubernetes, Grafana" and options.language == "en"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_event"),
        (json.dumps({"type": "response.create"}), "unknown_event"),
        (json.dumps({"type": "input_audio_buffer.append", "audio": "%%%"}), "invalid_value"),
        (json.dumps({"type": "input_audio_buffer.append"}), "invalid_value"),
        (
            json.dumps({"type": "session.update", "session": {"audio": {"input": {"format": {"rate": 11025}}}}}),
            "invalid_value",
        ),
        (
            json.dumps(
                {
                    "type": "session.update",
                    "session": {"audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}},
                }
            ),
            "model_not_found",
        ),
        (
            json.dumps(
                {"type": "session.update", "session": {"audio": {"input": {"transcription": {"language": "xx"}}}}}
            ),
            "invalid_parameter",
        ),
    ],
)
def test_a_bad_event_gets_an_error_event_and_the_session_goes_on(client, message, code):
    with live_session(client) as ws:
        ws.send_text(message)
        event = ws.receive_json()
        assert event["type"] == "error" and event["error"]["code"] == code, event
        assert event["error"]["type"] == "invalid_request_error" and event["error"]["message"]
        ws.send_json({"type": "input_audio_buffer.clear"})
        assert ws.receive_json()["type"] == "input_audio_buffer.cleared"


def test_binary_and_oversize_messages_are_refused(make_client):
    client = make_client(realtime_max_message_mb=0.01)
    with live_session(client) as ws:
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_json()["error"]["code"] == "binary"
        ws.send_json({"type": "input_audio_buffer.append", "audio": "A" * 20000})
        event = ws.receive_json()
        assert event["error"]["code"] == "too_large" and "0.01 MiB" in event["error"]["message"]


def test_manual_buffer_is_bounded(make_client, call_pcm24):
    client = make_client(realtime_max_buffer_s=1)
    with live_session(client) as ws:
        ws.send_json({"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}})
        events_until(ws, "session.updated")
        append_pcm(ws, call_pcm24[: 24000 * 2 * 2], chunk_bytes=24000 * 2)  # two appends of a second each
        ws.send_json({"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(480)).decode()})
        assert ws.receive_json()["error"]["code"] == "input_audio_buffer_full"


@pytest.mark.parametrize(
    ("how", "accepted"),
    [
        ({"headers": {"Authorization": f"Bearer {KEY}"}}, True),
        ({"subprotocols": ["realtime", f"openai-insecure-api-key.{KEY}"]}, True),
        ({"url": f"{URL}&api_key={KEY}"}, True),
        ({"headers": {"Authorization": "Bearer wrong-key-0123456789"}}, False),
        ({"subprotocols": ["realtime", "openai-insecure-api-key.wrong-key-0123456789"]}, False),
        ({}, False),
    ],
    ids=["header", "subprotocol", "query", "wrong-header", "wrong-subprotocol", "none"],
)
def test_the_api_key_comes_as_a_header_a_subprotocol_or_a_query(make_client, how, accepted):
    client = make_client(api_keys=KEY)
    url = how.pop("url", URL)
    with client.websocket_connect(url, **how) as ws:
        if accepted:
            assert ws.receive_json()["type"] == "session.created"
            if "subprotocols" in how:
                assert ws.accepted_subprotocol == "realtime"  # never the key
            return
        event, code = _refusal(ws)
    assert event["error"]["code"] == "invalid_api_key" and code == 1008
    assert KEY not in json.dumps(event)


def test_sessions_past_the_limit_are_refused_and_counted(make_client):
    client = make_client(max_realtime_sessions=1)
    with live_session(client):
        with client.websocket_connect(URL) as second:
            event, code = _refusal(second)
        assert event["error"]["code"] == "too_many_sessions" and code == 1013
        realtime = client.get("/health").json()["queue"]["realtime"]
        assert realtime == {"sessions": 1, "limit": 1, "opened": 1, "refused": 1, "partial_model": None}
    assert client.get("/health").json()["queue"]["realtime"]["sessions"] == 0


def test_other_intents_and_a_disabled_service_are_refused(make_client):
    client = make_client()
    with client.websocket_connect("/v1/realtime?intent=conversation") as ws:
        event, code = _refusal(ws)
    assert event["error"]["code"] == "unsupported_intent" and code == 1008
    off = make_client(max_realtime_sessions=0)
    with off.websocket_connect(URL) as ws:
        event, code = _refusal(ws)
    assert event["error"]["code"] == "realtime_off"


def test_a_quiet_session_is_closed_after_the_idle_timeout(make_client):
    client = make_client(realtime_idle_timeout_s=0.5)
    with live_session(client) as ws:
        event, code = _refusal(ws)
    assert event["error"]["code"] == "idle_timeout" and code == 1000


def test_a_session_still_owed_its_turns_is_not_idle(make_client, fake_pipeline, call_pcm24):
    """A client that sent its audio and only listens is waiting, not idle: the session stays open
    until every committed turn has its completed event, and only then counts the idle time."""
    client = make_client(realtime_idle_timeout_s=0.5)
    fake_pipeline.release.clear()  # the turn's decode is held
    with live_session(client) as ws:
        ws.send_json({"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}})
        events_until(ws, "session.updated")
        append_pcm(ws, call_pcm24[: 24000 * 2 * 3])
        ws.send_json({"type": "input_audio_buffer.commit"})
        events_until(ws, "input_audio_buffer.committed")
        assert fake_pipeline.started.wait(10)
        time.sleep(1.5)  # three idle timeouts pass while the turn is transcribed
        fake_pipeline.release.set()
        events = events_until(ws, "conversation.item.input_audio_transcription.completed")
        assert "error" not in [e["type"] for e in events]
        event, code = _refusal(ws)  # then, with nothing owed, the idle timeout applies again
    assert event["error"]["code"] == "idle_timeout" and code == 1000


def test_shutdown_transcribes_the_open_turn_then_says_goodbye(client, call_pcm24):
    with live_session(client) as ws:
        ws.send_json({"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}})
        events_until(ws, "session.updated")
        append_pcm(ws, call_pcm24[: 24000 * 2 * 3])
        ws.send_json({"type": "input_audio_buffer.clear"})  # a round trip: every append was taken
        assert ws.receive_json()["type"] == "input_audio_buffer.cleared"
        append_pcm(ws, call_pcm24[: 24000 * 2 * 3])
        ws.send_json({"type": "session.update", "session": {}})
        events_until(ws, "session.updated")
        client.app.state.gate.drain(grace_s=30)
        events = events_until(ws, "error")
        assert [e["type"] for e in events][-2:] == ["conversation.item.input_audio_transcription.completed", "error"]
        assert events[-1]["error"]["code"] == "server_shutting_down"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == 1012
    assert client.get("/health").json()["queue"]["realtime"]["sessions"] == 0


def test_a_turn_not_transcribed_within_the_grace_is_cancelled_and_the_goodbye_still_comes(
    client, fake_pipeline, call_pcm24
):
    """A shutdown's grace bounds a live session too: its open turn's decode (held here) is
    cancelled when the grace ends, gets its failed event, and the session still says why it
    ends and closes with 1012."""
    fake_pipeline.release.clear()
    with live_session(client) as ws:
        ws.send_json({"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}})
        events_until(ws, "session.updated")
        append_pcm(ws, call_pcm24[: 24000 * 2 * 3])
        ws.send_json({"type": "session.update", "session": {}})
        events_until(ws, "session.updated")
        started = time.monotonic()
        client.app.state.gate.drain(grace_s=1.0)
        events = events_until(ws, "error")
        took = time.monotonic() - started
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    kinds = [e["type"] for e in events]
    assert kinds[-3:] == [
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.failed",
        "error",
    ], kinds
    assert events[-2]["item_id"] == events[-3]["item_id"]
    assert events[-1]["error"]["code"] == "server_shutting_down" and "cancelled" in events[-1]["error"]["message"]
    assert closed.value.code == 1012
    assert 1.0 <= took < 4.0
    assert client.get("/health").json()["queue"]["realtime"]["sessions"] == 0


def _hostile_messages(count: int = 300) -> list[str]:
    """Messages no client should send, made from a fixed seed: each must get exactly one error event."""
    rng = random.Random(41)
    shapes = [
        lambda: "[" * rng.choice([2000, 10_000, 100_000]) + "]" * rng.choice([0, 2000]),
        lambda: '{"a":' * rng.randint(1000, 5000) + "1" + "}" * rng.randint(0, 5000),
        lambda: '{"type": "session.update", "n": ' + "9" * rng.randint(4301, 20_000) + "}",
        lambda: rng.choice(["NaN", "Infinity", "-Infinity", '{"type": NaN}', '{"x": [Infinity]}']),
        lambda: json.dumps(rng.choice([0, -1.5, "text", None, True, [], [{"type": "session.update"}]])),
        lambda: json.dumps({"type": rng.choice([5, None, ["x"], {"a": 1}, "", "\ud800", "x" * 5000])}),
        lambda: json.dumps({"type": "session.update", "session": rng.choice(["x", 1, [1], {"audio": [1]}])}),
        lambda: json.dumps({"type": "input_audio_buffer.append", "audio": rng.choice([5, {"a": 1}, "\ud800", "%"])}),
        lambda: json.dumps(
            {"type": "session.update", "session": {"audio": {"input": {"format": {"rate": rng.choice(["x", -1])}}}}}
        ),
        lambda: "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(1, 200))),
        lambda: '{"type": "input_audio_buffer.commit"' + rng.choice(["", ",", ":", '"']),
    ]
    return [rng.choice(shapes)() for _ in range(count)]


def test_a_fuzzed_message_never_ends_the_session_without_a_word(make_client):
    """A few hundred malformed messages — nesting past the parser, numbers past Python's digit
    limit, NaN, lone surrogates, wrong types — each get one error event, and the session goes on."""
    client = make_client()
    with live_session(client) as ws:
        for message in _hostile_messages():
            ws.send_text(message)
            ws.send_json({"type": "input_audio_buffer.clear"})  # its answer comes after the message's
            answer, cleared = ws.receive_json(), ws.receive_json()
            assert answer["type"] == "error" and answer["error"]["message"], (message[:80], answer)
            assert cleared["type"] == "input_audio_buffer.cleared", (message[:80], cleared)
    wait_for(lambda: client.app.state.live.open == 0, 10, "the session counted as closed")
