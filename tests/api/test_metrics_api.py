"""/metrics with the fake pipeline: route templates as labels, every answer counted, scrapers' access."""

from tests.support.metrics import metric_samples


def test_requests_are_labelled_by_route_template_not_path(client):
    for model in ("whisper-1", "a", "b"):
        client.get(f"/v1/models/{model}")
    client.get("/no/such/page")
    samples = metric_samples(client)
    counted = {
        labels: value for (name, labels), value in samples.items() if name == "transcription_http_requests_total"
    }
    assert counted[(("method", "GET"), ("route", "/v1/models/{model_id:path}"), ("status", "200"))] == 1
    assert counted[(("method", "GET"), ("route", "/v1/models/{model_id:path}"), ("status", "404"))] == 2
    assert counted[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1


def test_refusals_before_the_route_are_counted(make_client, sample_bytes):
    client = make_client(max_upload_mb=0.5)
    reply = client.post("/transcribe", files={"file": ("a.wav", sample_bytes * 2)})
    assert reply.status_code == 413
    samples = metric_samples(client)
    assert any(
        name == "transcription_http_requests_total" and ("status", "413") in labels and value == 1
        for (name, labels), value in samples.items()
    )


def test_transcriptions_add_audio_and_stage_seconds(client, sample_bytes):
    assert client.post("/transcribe", files={"file": ("a.wav", sample_bytes)}).status_code == 200
    samples = metric_samples(client)
    assert samples[("transcription_audio_seconds_total", (("task", "transcribe"),))] == 30.0
    assert samples[("transcription_stage_seconds_count", (("stage", "asr"),))] == 1
    assert ("transcription_stage_seconds_count", (("stage", "features"),)) not in samples


def test_metrics_follow_the_health_key_setting(make_client):
    key = "sk-0123456789abcdef"
    assert make_client(api_keys=key).get("/metrics").status_code == 200
    closed = make_client(api_keys=key, health_requires_key=True)
    assert closed.get("/metrics").status_code == 401
    metric_samples(closed, Authorization=f"Bearer {key}")
