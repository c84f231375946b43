"""/v1: OpenAI's field names in, OpenAI's shapes out, OpenAI's error shape, our status codes."""

import pytest

from app.engine.whisper.fallback import TEMPERATURES

OPENAI_ERROR_KEYS = {"message", "type", "param", "code"}


def _post(client, content: bytes | None, path="/v1/audio/transcriptions", fields=None, **form):
    files = {"file": ("call.wav", content, "audio/wav")} if content is not None else None
    return client.post(path, data={"model": "whisper-1", **form} | (fields or {}), files=files)


def _error(reply) -> dict:
    body = reply.json()
    assert set(body) == {"error"} and set(body["error"]) == OPENAI_ERROR_KEYS, body
    return body["error"]


def test_json_is_text_and_usage_and_skips_word_times(client, sample_bytes, fake_pipeline):
    reply = _post(client, sample_bytes)
    assert reply.status_code == 200
    assert reply.json() == {"text": "Hello there. Hi.", "usage": {"type": "duration", "seconds": 30.0}}
    _, options = fake_pipeline.calls[0]
    # Plain text needs neither word times nor speakers: the fast path.
    assert options.word_timestamps is False and options.diarize is False
    assert options.task == "transcribe" and options.checks.temperatures == TEMPERATURES  # 0: with fallback


def test_verbose_json_lists_what_the_granularities_ask(client, sample_bytes):
    both = _post(
        client, sample_bytes, response_format="verbose_json", fields={"timestamp_granularities[]": ["word", "segment"]}
    ).json()
    assert both["task"] == "transcribe" and both["language"] == "english" and both["duration"] == 30.0
    assert [w["word"] for w in both["words"]] == ["Hello", "there.", "Hi."]
    assert set(both["words"][0]) == {"word", "start", "end"}
    first = both["segments"][0]
    assert set(first) == {
        "id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio",
        "no_speech_prob",
    }  # fmt: skip
    assert (first["id"], first["seek"], first["start"], first["text"]) == (0, 50, 0.5, "Hello there.")

    segments_only = _post(client, sample_bytes, response_format="verbose_json").json()
    assert segments_only["words"] is None and len(segments_only["segments"]) == 2
    words_only = _post(client, sample_bytes, response_format="verbose_json", timestamp_granularities="word").json()
    assert words_only["segments"] is None and len(words_only["words"]) == 3


def test_diarized_json_asks_for_speakers(client, sample_bytes, fake_pipeline):
    fake_pipeline.diarizer = object()  # loaded
    reply = _post(client, sample_bytes, response_format="diarized_json", num_speakers="2")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["task"] == "transcribe" and body["text"] == "Hello there. Hi."
    assert body["segments"] == [
        {"type": "transcript.text.segment", "id": "seg_0", "start": 0.5, "end": 1.5, "text": "Hello there.",
         "speaker": "SPEAKER_00"},
        {"type": "transcript.text.segment", "id": "seg_1", "start": 2.0, "end": 3.0, "text": "Hi.",
         "speaker": "SPEAKER_01"},
    ]  # fmt: skip
    _, options = fake_pipeline.calls[0]
    assert options.diarize is True and options.word_timestamps is True and options.hints.num_speakers == 2


def test_diarized_json_without_a_diarizer_is_refused_before_work(client, sample_bytes, fake_pipeline):
    fake_pipeline.diarizer_unavailable = "ENABLE_DIARIZATION=false"
    reply = _post(client, sample_bytes, response_format="diarized_json")
    assert reply.status_code == 422
    error = _error(reply)
    assert error["param"] == "response_format" and "ENABLE_DIARIZATION=false" in error["message"]
    assert fake_pipeline.calls == []


@pytest.mark.parametrize(
    ("fmt", "media_type", "start"),
    [
        ("text", "text/plain", "Hello there. Hi.\n"),
        ("srt", "application/x-subrip", "1\n00:00:00,500 --> 00:00:01,500\nHello there.\n"),
        ("vtt", "text/vtt", "WEBVTT\n\n00:00:00.500 --> 00:00:01.500\nHello there.\n"),
    ],
)
def test_text_formats(client, sample_bytes, fmt, media_type, start):
    reply = _post(client, sample_bytes, response_format=fmt)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith(media_type)
    assert reply.text.startswith(start)


def test_translation_sets_the_task(client, sample_bytes, fake_pipeline):
    reply = _post(client, sample_bytes, path="/v1/audio/translations", response_format="verbose_json")
    assert reply.status_code == 200
    assert reply.json()["task"] == "translate"
    _, options = fake_pipeline.calls[0]
    assert options.task == "translate"


def test_translation_has_no_diarized_json(client, sample_bytes):
    reply = _post(client, sample_bytes, path="/v1/audio/translations", response_format="diarized_json")
    assert reply.status_code == 422 and _error(reply)["param"] == "response_format"


def test_fields_reach_the_options(client, sample_bytes, fake_pipeline):
    reply = _post(client, sample_bytes, language="de", prompt="Glossar: WhisperX", temperature="0.4")
    assert reply.status_code == 200
    _, options = fake_pipeline.calls[0]
    assert (options.language, options.initial_prompt, options.checks.temperatures) == (
        "de",
        "Glossar: WhisperX",
        (0.4,),
    )


def test_the_loaded_model_id_and_the_alias_are_accepted(client, sample_bytes, fake_pipeline):
    """The model's own id and OpenAI's `whisper-1` both reach the loaded model; another name is a 404."""
    for name in ("fake-whisper", "whisper-1"):
        reply = _post(client, sample_bytes, fields={"model": name})
        assert reply.status_code == 200 and reply.json()["text"] == "Hello there. Hi.", name
        _, options = fake_pipeline.calls[-1]
        assert options.model == "fake-whisper", name
    reply = _post(client, sample_bytes, fields={"model": "gpt-4o-transcribe"})
    assert reply.status_code == 404
    error = _error(reply)
    assert (error["code"], error["param"], error["type"]) == ("model_not_found", "model", "invalid_request_error")
    assert "fake-whisper" in error["message"]


@pytest.mark.parametrize(
    ("form", "status", "param"),
    [
        ({"stream": "true", "response_format": "verbose_json"}, 422, "response_format"),
        ({"include[]": "logprobs"}, 422, "include"),
        ({"response_format": "docx"}, 422, "response_format"),
        ({"temperature": "1.5"}, 422, "temperature"),
        ({"language": "klingon"}, 422, "language"),
        ({"language": "fr"}, 422, "language"),  # the fake model knows en and de only
        ({"response_format": "text", "timestamp_granularities[]": "word"}, 422, "timestamp_granularities"),
        ({"timestamp_granularities[]": "sentence", "response_format": "verbose_json"}, 422, "timestamp_granularities"),
        ({"diarize": "false", "num_speakers": "2"}, 422, None),
    ],
)
def test_bad_fields_get_openai_errors_with_our_status(client, sample_bytes, fake_pipeline, form, status, param):
    reply = _post(client, sample_bytes, fields=form)
    assert reply.status_code == status, reply.text
    error = _error(reply)
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert fake_pipeline.calls == []


def test_model_is_required(client, sample_bytes):
    reply = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", sample_bytes)})
    assert reply.status_code == 422 and _error(reply)["param"] == "model"


def test_upload_errors_take_openai_shape(make_client, client, sample_bytes):
    assert _error(_post(client, None))["code"] == "missing_file"
    not_audio = _post(client, b"hello, this is text" * 100)
    assert not_audio.status_code == 400, "OpenAI's status for a file it cannot read"
    assert _error(not_audio)["code"] == "unsupported_media"
    too_big = _post(make_client(max_upload_mb=0.5), sample_bytes)
    assert too_big.status_code == 413 and _error(too_big)["code"] == "payload_too_large"


def test_busy_is_a_server_error_with_retry_after(make_client, sample_bytes, fake_pipeline):
    client = make_client(max_pending_requests=1)
    with client.app.state.gate.admit():  # one transcription holds the only slot
        reply = _post(client, sample_bytes)
    assert reply.status_code == 503 and reply.headers["retry-after"]
    assert _error(reply)["type"] == "server_error"


def test_keys_guard_v1_in_openai_shape(make_client, sample_bytes):
    client = make_client(api_keys="sk-0123456789abcdef")
    reply = client.get("/v1/models", headers={"Authorization": "Bearer sk-wrong"})
    assert reply.status_code == 401 and reply.headers["www-authenticate"].startswith("Bearer")
    assert _error(reply)["code"] == "invalid_api_key"
    ok = client.get("/v1/models", headers={"Authorization": "Bearer sk-0123456789abcdef"})
    assert ok.status_code == 200


def test_models(client):
    listing = client.get("/v1/models").json()
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == ["fake-whisper", "whisper-1"]
    assert all(m["object"] == "model" and m["owned_by"] and m["created"] > 0 for m in listing["data"])
    assert client.get("/v1/models/whisper-1").json()["id"] == "whisper-1"
    missing = client.get("/v1/models/whisper-2")
    assert missing.status_code == 404 and _error(missing)["code"] == "model_not_found"


def test_transcribe_keeps_its_own_error_shape(client):
    body = client.post("/transcribe").json()
    assert set(body["error"]) == {"code", "message"}
