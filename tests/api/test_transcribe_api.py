import threading

import pytest

from tests.api.conftest import FakePipeline


def _post(client, content: bytes | None, **form):
    files = {"file": ("call.wav", content, "audio/wav")} if content is not None else None
    return client.post("/transcribe", data=form, files=files)


def test_json_reply_keeps_the_documented_shape(client, sample_bytes, fake_pipeline):
    reply = _post(client, sample_bytes, diarize="true")
    assert reply.status_code == 200
    body = reply.json()
    assert body["text"] == "Hello there. Hi."
    assert body["language"] == "en" and body["language_probability"] == 0.97
    assert body["duration"] == 30.0
    assert body["model"] == "fake-whisper"
    assert body["word_timestamps_method"] == "whisper"
    assert body["num_speakers"] == 2
    assert body["speakers"] == {
        "SPEAKER_00": {"duration": 1.2, "segments": 1},
        "SPEAKER_01": {"duration": 1.2, "segments": 1},
    }
    assert body["diarization"] == {
        "requested": True,
        "performed": True,
        "diarizer": "fake",
        "device": "cpu",
        "detail": None,
        "turns": [
            {"start": 0.4, "end": 1.6, "speaker": "SPEAKER_00"},
            {"start": 1.9, "end": 3.1, "speaker": "SPEAKER_01"},
        ],
        "known_speakers": [],
    }
    assert body["diarization_device"] == "cpu"
    first = body["segments"][0]
    assert set(first) == {"start", "end", "text", "speaker", "avg_logprob", "words"}
    assert first["words"][0] == {"word": "Hello", "start": 0.5, "end": 0.9, "score": 0.9, "speaker": "SPEAKER_00"}
    assert [w["word"] for w in body["word_segments"]] == ["Hello", "there.", "Hi."]
    assert "decode" in body["timings"]
    # The pipeline got the decoded waveform, not the file.
    audio, _ = fake_pipeline.calls[0]
    assert audio.dtype.name == "float32" and audio.shape == (480000,)


def test_form_fields_reach_the_pipeline(client, sample_bytes, fake_pipeline):
    reply = _post(
        client, sample_bytes, language="DE", task="translate", min_speakers="2", max_speakers="3",
        initial_prompt="Glossary: WhisperX", batch_size="4",
    )  # fmt: skip
    assert reply.status_code == 200
    _, options = fake_pipeline.calls[0]
    assert options.language == "de"
    assert options.task == "translate"
    assert options.diarize is True, "speaker hints imply diarization"
    assert (options.hints.min_speakers, options.hints.max_speakers, options.hints.num_speakers) == (2, 3, None)
    assert options.initial_prompt == "Glossary: WhisperX"
    assert options.batch_size == 4


def test_defaults_come_from_settings(make_client, sample_bytes, fake_pipeline):
    client = make_client(batch_size=7)
    assert _post(client, sample_bytes).status_code == 200
    _, options = fake_pipeline.calls[0]
    assert options.batch_size == 7 and options.language is None and options.diarize is False


@pytest.mark.parametrize(
    ("output", "media_type", "start"),
    [
        ("srt", "application/x-subrip", "1\n00:00:00,500 --> 00:00:01,500\n"),
        ("vtt", "text/vtt", "WEBVTT\n"),
        ("txt", "text/plain", "Hello there.\n"),
        ("tsv", "text/tab-separated-values", "start\tend\tspeaker\ttext\n500\t1500"),
    ],
)
def test_subtitle_and_text_outputs(client, sample_bytes, output, media_type, start):
    reply = _post(client, sample_bytes, output=output)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith(media_type)
    assert reply.text.startswith(start)


@pytest.mark.parametrize(
    ("content", "form", "status", "code"),
    [
        (None, {}, 400, "missing_file"),
        (b"", {}, 400, "empty_file"),
        (b"definitely not audio" * 100, {}, 415, "unsupported_media"),
        (b"RIFF\x00\x00", {}, 415, "unsupported_media"),
        ("sample", {"language": "klingon"}, 422, "invalid_parameter"),
        ("sample", {"language": "fr"}, 422, "invalid_parameter"),
        ("sample", {"min_speakers": "4", "max_speakers": "2"}, 422, "invalid_parameter"),
        ("sample", {"diarize": "false", "num_speakers": "2"}, 422, "invalid_parameter"),
        ("sample", {"output": "docx"}, 422, "invalid_parameter"),
        ("sample", {"batch_size": "65"}, 422, "invalid_parameter"),
        ("sample", {"num_speakers": "two"}, 422, "invalid_parameter"),
    ],
)
def test_bad_input_gets_a_json_4xx(client, sample_bytes, content, form, status, code):
    reply = _post(client, sample_bytes if content == "sample" else content, **form)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code
    assert error["message"]


def test_silent_audio_is_a_200(client):
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 16000)
    assert _post(client, buffer.getvalue()).status_code == 200


def test_upload_over_the_file_limit_is_413(make_client, sample_bytes):
    client = make_client(max_upload_mb=0.5)  # the sample is ~0.9 MiB
    reply = _post(client, sample_bytes)
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "payload_too_large"


def test_body_over_the_request_limit_is_413_before_parsing(make_client):
    client = make_client(max_upload_mb=0.5)  # request limit: 0.5 MiB + 1 MiB of multipart allowance
    reply = _post(client, b"\x00" * (2 * 1024 * 1024))
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "payload_too_large"


def test_audio_over_the_duration_limit_is_413(make_client, sample_bytes):
    client = make_client(max_audio_seconds=10)
    reply = _post(client, sample_bytes)
    assert reply.status_code == 413


def test_a_server_fault_is_a_500_with_an_error_id_and_the_next_request_works(
    client, sample_bytes, fake_pipeline, caplog
):
    fake_pipeline.fail_with = RuntimeError("CUDA exploded at /secret/path.py")
    reply = _post(client, sample_bytes)
    assert reply.status_code == 500
    error = reply.json()["error"]
    assert error["code"] == "internal_error" and len(error["error_id"]) == 12
    assert "secret" not in reply.text and "Traceback" not in reply.text
    assert error["error_id"] in caplog.text, "the log line carries the id the client saw"
    fake_pipeline.fail_with = None
    assert _post(client, sample_bytes).status_code == 200


def test_no_temporary_file_is_left_behind(client, sample_bytes, fake_pipeline, tmp_path):
    _post(client, sample_bytes)
    _post(client, b"not audio at all" * 10)
    fake_pipeline.fail_with = RuntimeError("boom")
    _post(client, sample_bytes)
    assert not list(tmp_path.glob("upload-*"))


def test_not_ready_is_503_with_retry_after(make_client, ready_state, sample_bytes):
    from app.serving.status import Phase

    state = ready_state()
    state.phase = Phase.LOADING
    client = make_client(state)
    reply = _post(client, sample_bytes)
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "5"
    assert reply.json()["error"]["code"] == "not_ready"


def _start_blocked_request(client, sample_bytes, fake_pipeline: FakePipeline) -> threading.Thread:
    fake_pipeline.release.clear()
    thread = threading.Thread(target=_post, args=(client, sample_bytes), daemon=True)
    thread.start()
    assert fake_pipeline.started.wait(10)
    return thread


def test_overload_is_refused_with_503_and_retry_after(make_client, sample_bytes, fake_pipeline):
    client = make_client(max_pending_requests=1)
    running = _start_blocked_request(client, sample_bytes, fake_pipeline)
    try:
        reply = _post(client, sample_bytes)
        assert reply.status_code == 503
        assert reply.json()["error"]["code"] == "busy"
        assert reply.headers["retry-after"]
        queue = client.get("/health").json()["queue"]
        assert (queue["in_flight"], queue["limit"], queue["refused"], queue["draining"]) == (1, 1, 1, False)
    finally:
        fake_pipeline.release.set()
        running.join(10)
    assert _post(client, sample_bytes).status_code == 200


def test_health_answers_while_a_transcription_runs(client, sample_bytes, fake_pipeline):
    """/health is answered while a transcription is held inside the pipeline (it does not wait for it)."""
    running = _start_blocked_request(client, sample_bytes, fake_pipeline)
    try:
        reply = client.get("/health")
        assert reply.status_code == 200
        assert reply.json()["queue"]["in_flight"] == 1 and not fake_pipeline.release.is_set()
    finally:
        fake_pipeline.release.set()
        running.join(10)


def test_chunked_body_over_the_limit_is_stopped_with_413(make_client):
    client = make_client(max_upload_mb=0.5)
    boundary = "X" * 16

    def body():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'.encode()
        for _ in range(40):
            yield b"\x00" * 65536

    reply = client.post(
        "/transcribe", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "payload_too_large"


def test_gpu_out_of_memory_is_a_503_and_the_service_carries_on(client, sample_bytes, fake_pipeline):
    from app.errors import GpuOutOfMemory

    fake_pipeline.fail_with = GpuOutOfMemory("out of GPU memory", headers={"Retry-After": "10"})
    reply = _post(client, sample_bytes)
    assert reply.status_code == 503
    assert reply.json()["error"]["code"] == "gpu_out_of_memory"
    assert reply.headers["retry-after"] == "10"
    fake_pipeline.fail_with = None
    assert _post(client, sample_bytes).status_code == 200


def test_word_timestamps_can_be_turned_off(client, sample_bytes, fake_pipeline):
    assert _post(client, sample_bytes, word_timestamps="false").status_code == 200
    _, options = fake_pipeline.calls[0]
    assert options.word_timestamps is False and options.diarize is False
    reply = _post(client, sample_bytes, word_timestamps="false", diarize="true")
    assert reply.status_code == 422
    assert "word_timestamps" in reply.json()["error"]["message"]


def test_the_413_message_states_the_configured_limit(make_client, sample_bytes):
    reply = _post(make_client(max_upload_mb=0.5), sample_bytes)
    assert reply.json()["error"]["message"] == "The upload exceeds the limit of 0.5 MiB (MAX_UPLOAD_MB)."
    reply = _post(make_client(max_upload_mb=0.5), b"\x00" * (2 * 1024 * 1024))  # refused from Content-Length
    assert reply.json()["error"]["message"] == "The upload exceeds the limit of 0.5 MiB (MAX_UPLOAD_MB)."


def _multipart(*parts: tuple[str, str | None, bytes]) -> tuple[bytes, dict[str, str]]:
    boundary = "b0undary"
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


def test_a_file_part_without_a_filename_is_still_the_file(client, sample_bytes):
    body, headers = _multipart(("language", None, b"en"), ("file", None, sample_bytes))
    reply = client.post("/transcribe", content=body, headers=headers)
    assert reply.status_code == 200, reply.text


def test_two_files_are_refused_not_silently_dropped(client, sample_bytes):
    body, headers = _multipart(("file", "a.wav", sample_bytes), ("file", "b.wav", sample_bytes))
    reply = client.post("/transcribe", content=body, headers=headers)
    assert reply.status_code == 400
    assert "one file per request" in reply.json()["error"]["message"]


def test_a_body_cut_before_its_closing_boundary_is_400(client, sample_bytes):
    body, headers = _multipart(("file", "a.wav", sample_bytes))
    reply = client.post("/transcribe", content=body[:-40], headers=headers)
    assert reply.status_code == 400
    assert "closing boundary" in reply.json()["error"]["message"]


def test_field_errors_are_422_in_words(client, sample_bytes):
    body, headers = _multipart(("num_speakers", None, b"many"), ("file", "a.wav", sample_bytes))
    reply = client.post("/transcribe", content=body, headers=headers)
    assert reply.status_code == 422
    assert reply.json()["error"]["message"].startswith("num_speakers: ")


def test_openapi_requires_the_file(client):
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/transcribe"]["post"]["requestBody"]
    assert body["required"] is True
    form = body["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"]
    assert form["properties"]["file"] == {
        "type": "string",
        "format": "binary",
        "description": "Audio or video in any format ffmpeg reads.",
    }
    assert {"language", "diarize", "num_speakers", "output"} <= set(form["properties"])


def test_the_disk_budget_refuses_uploads_that_do_not_fit(make_client, sample_bytes, tmp_path):
    client = make_client(upload_disk_budget_mb=0.25)  # the sample is ~0.9 MiB
    reply = _post(client, sample_bytes)
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "5"
    assert "The server's upload disk budget (0.25 MiB) is taken" in reply.json()["error"]["message"]
    disk = client.get("/health").json()["queue"]["budgets"]["disk"]
    assert disk["refused"] == 1 and disk["used_mb"] == 0
    assert not list(tmp_path.glob("upload-*"))


def test_the_memory_budget_refuses_audio_that_does_not_fit(make_client, sample_bytes):
    client = make_client(audio_memory_budget_mb=1)  # 30 s of audio is 1.8 MiB as float32
    reply = _post(client, sample_bytes)
    assert reply.status_code == 503
    assert "decoded-audio memory budget" in reply.json()["error"]["message"]
    memory = client.get("/health").json()["queue"]["budgets"]["memory"]
    assert memory["refused"] == 1 and memory["used_mb"] == 0


def test_draining_refuses_new_work_and_readiness(client, sample_bytes):
    client.app.state.gate.drain(grace_s=30)
    reply = _post(client, sample_bytes)
    assert reply.status_code == 503
    assert reply.json()["error"]["code"] == "shutting_down"
    health = client.get("/health")
    assert health.status_code == 503 and health.json()["status"] == "draining"
    assert client.get("/health/live").status_code == 200


def test_cancelled_work_is_a_503_and_counted(client, sample_bytes, fake_pipeline):
    fake_pipeline.release.clear()
    replies = []
    running = threading.Thread(target=lambda: replies.append(_post(client, sample_bytes)), daemon=True)
    running.start()
    assert fake_pipeline.started.wait(10)
    assert client.app.state.gate.cancel_all("the server is shutting down") == 1
    running.join(10)
    [reply] = replies
    assert reply.status_code == 503 and reply.headers["retry-after"] == "5"
    assert reply.json()["error"] == {
        "code": "cancelled",
        "message": "The transcription was cancelled: the server is shutting down.",
    }
    assert client.get("/health").json()["queue"]["cancelled"] == 1
