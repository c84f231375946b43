"""stream=true on /v1/audio/transcriptions, against the fake pipeline: the events' shapes and
order, refusals before the stream, a failure inside it, and what the request holds afterwards."""

from __future__ import annotations

import json

import pytest

from app.errors import GpuOutOfMemory


def _stream(client, content: bytes, **form) -> tuple[int, str, list[dict]]:
    data = {"model": "whisper-1", "stream": "true", **form}
    reply = client.post("/v1/audio/transcriptions", data=data, files={"file": ("call.wav", content, "audio/wav")})
    events = [json.loads(line[len("data: ") :]) for line in reply.text.splitlines() if line.startswith("data: ")]
    return reply.status_code, reply.headers.get("content-type", ""), events


def test_deltas_then_done_with_the_whole_text(client, sample_bytes):
    status, media_type, events = _stream(client, sample_bytes)
    assert status == 200 and media_type.startswith("text/event-stream")
    assert [e["type"] for e in events] == ["transcript.text.delta", "transcript.text.delta", "transcript.text.done"]
    assert [e["delta"] for e in events[:2]] == ["Hello there.", " Hi."]
    done = events[-1]
    assert done["text"] == "".join(e["delta"] for e in events[:2]) == "Hello there. Hi."
    assert done["usage"] == {"type": "duration", "seconds": 30.0}
    assert all("logprobs" not in e for e in events)


def test_the_streamed_text_is_the_text_without_streaming(client, sample_bytes):
    plain = client.post(
        "/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"file": ("call.wav", sample_bytes)}
    ).json()
    _, _, events = _stream(client, sample_bytes)
    assert events[-1]["text"] == plain["text"]


def test_logprobs_ride_on_each_delta_and_on_done(client, sample_bytes):
    _, _, events = _stream(client, sample_bytes, **{"include[]": "logprobs"})
    deltas, done = events[:-1], events[-1]
    for delta in deltas:
        [entry] = delta["logprobs"]
        assert set(entry) == {"token", "logprob", "bytes"} and entry["logprob"] <= 0
        assert bytes(entry["bytes"]).decode() == entry["token"]
    assert done["logprobs"] == [entry for delta in deltas for entry in delta["logprobs"]]


def test_diarized_json_streams_speaker_segments_before_done(make_client, sample_bytes, fake_pipeline):
    fake_pipeline.diarizer = object()
    client = make_client()
    _, _, events = _stream(client, sample_bytes, response_format="diarized_json")
    kinds = [e["type"] for e in events]
    assert kinds == ["transcript.text.delta"] * 2 + ["transcript.text.segment"] * 2 + ["transcript.text.done"]
    segments = events[2:4]
    assert [(s["id"], s["speaker"], s["text"]) for s in segments] == [
        ("seg_0", "SPEAKER_00", "Hello there."),
        ("seg_1", "SPEAKER_01", "Hi."),
    ]
    assert all(s["start"] <= s["end"] for s in segments)


@pytest.mark.parametrize(
    ("form", "status", "param"),
    [
        ({"response_format": "srt"}, 422, "response_format"),
        ({"model": "gpt-4o-transcribe"}, 404, "model"),
        ({"language": "klingon"}, 422, "language"),
    ],
)
def test_refusals_come_before_the_stream_as_json(client, sample_bytes, fake_pipeline, form, status, param):
    status_code, media_type, _ = _stream(client, sample_bytes, **form)
    assert (status_code, media_type) == (status, "application/json")
    assert fake_pipeline.calls == []


def test_a_file_that_is_not_audio_is_refused_before_the_stream(client):
    status, media_type, _ = _stream(client, b"this is not audio at all " * 200)
    assert (status, media_type) == (400, "application/json")


def test_translations_do_not_stream(client, sample_bytes):
    reply = client.post(
        "/v1/audio/translations",
        data={"model": "whisper-1", "stream": "true"},
        files={"file": ("call.wav", sample_bytes)},
    )
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "stream"


def test_a_failure_after_the_first_delta_is_an_error_event(client, sample_bytes, fake_pipeline):
    fake_pipeline.fail_with = GpuOutOfMemory("The GPU ran out of memory.")
    status, _, events = _stream(client, sample_bytes)
    assert status == 200
    assert [e["type"] for e in events] == ["transcript.text.delta", "transcript.text.delta", "error"]
    error = events[-1]["error"]
    assert error["message"] == "The GPU ran out of memory." and error["type"] == "server_error"


def test_an_unexpected_failure_hides_its_details(client, sample_bytes, fake_pipeline):
    fake_pipeline.fail_with = RuntimeError("secret internals")
    _, _, events = _stream(client, sample_bytes)
    error = events[-1]["error"]
    assert events[-1]["type"] == "error" and error["code"] == "internal_error"
    assert "secret" not in json.dumps(events)


def test_the_stream_releases_its_slot_and_upload(client, sample_bytes, tmp_path):
    for _ in range(3):
        assert _stream(client, sample_bytes)[0] == 200
    assert client.get("/health").json()["queue"]["in_flight"] == 0
    assert [p for p in tmp_path.rglob("*") if p.is_file() and "models" not in p.parts] == []
