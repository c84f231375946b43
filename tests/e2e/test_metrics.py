"""/metrics on the real server: scraped before and after real transcriptions, parsed by Prometheus's parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

SAMPLE_SECONDS = 30.0


def _scrape(http) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = http.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def _value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_real_transcriptions(http, sample_wav):
    before = _scrape(http)
    for output in ("json", "srt"):
        with sample_wav.open("rb") as audio:
            assert http.post("/transcribe", files={"file": audio}, data={"output": output}).status_code == 200
    with sample_wav.open("rb") as audio:
        reply = http.post("/v1/audio/transcriptions", files={"file": audio}, data={"model": "whisper-1"})
    assert reply.status_code == 200
    assert http.post("/transcribe", files={"file": ("x.wav", b"not audio")}).status_code == 415
    after = _scrape(http)

    def grew(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    requests = "transcription_http_requests_total"
    assert grew(requests, route="/transcribe", method="POST", status="200") == 2
    assert grew(requests, route="/transcribe", method="POST", status="415") == 1
    assert grew(requests, route="/v1/audio/transcriptions", method="POST", status="200") == 1
    assert grew("transcription_http_request_duration_seconds_count", route="/transcribe", method="POST") == 3
    assert grew("transcription_audio_seconds_total", task="transcribe") == 3 * SAMPLE_SECONDS
    assert grew("transcription_stage_seconds_count", stage="asr") == 3
    assert grew("transcription_stage_seconds_count", stage="decode") == 3
    assert grew("transcription_stage_seconds_sum", stage="total") > 0

    assert grew("transcription_scheduler_batches_total") >= 3
    assert grew("transcription_scheduler_batch_size_count") == grew("transcription_scheduler_batches_total")
    assert _value(after, "transcription_scheduler_busy_seconds_total") > 0
    assert _value(after, "transcription_model_seconds_total", call="decode") > 0
    assert _value(after, "transcription_in_flight") == 0
    assert _value(after, "transcription_ready") == 1
    assert _value(after, "transcription_startup_seconds", step="warmup") > 0
    assert _value(after, "transcription_startup_seconds", step="whisper") > 0
    assert _value(after, "transcription_startup_seconds", step="before_load") > 0
    # Start-up's objects (torch, pyannote, the models) are out of the collector's walks.
    assert _value(after, "transcription_gc_frozen_objects") > 100_000
    assert _value(after, "transcription_budget_limit_bytes", budget="memory") > 0
    build = next(labels for (name, labels) in after if name == "transcription_build_info")
    assert dict(build) | {"model": "bundled-base", "device": "cpu", "compute_type": "int8"} == dict(build)
