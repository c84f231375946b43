"""Hotwords and VAD knobs through every transcription route: they reach the options, and bad ones get 422."""

from __future__ import annotations

import pytest

from app.engine.vad import SpeechParams
from tests.api.conftest import submit, wait_until

KNOBS = {"hotwords": "Kubernetes, Grafana", "vad_onset": "0.6", "vad_offset": "0.4", "chunk_size": "12"}


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/transcribe", {}),
        ("/v1/audio/transcriptions", {"model": "whisper-1"}),
        ("/v1/audio/translations", {"model": "whisper-1"}),
    ],
)
def test_hotwords_and_vad_knobs_reach_the_pipeline(client, sample_bytes, fake_pipeline, path, fields):
    reply = client.post(path, data={**fields, **KNOBS}, files={"file": ("call.wav", sample_bytes)})
    assert reply.status_code == 200, reply.text
    _, options = fake_pipeline.calls[0]
    assert options.hotwords == "Kubernetes, Grafana"
    assert options.speech == SpeechParams(onset=0.6, offset=0.4, chunk_size=12)


def test_jobs_keep_them(jobs_client, sample_bytes, fake_pipeline):
    reply = submit(jobs_client, sample_bytes, **KNOBS)
    assert reply.status_code == 202, reply.text
    assert wait_until(jobs_client, reply.json()["id"])["state"] == "succeeded"
    _, options = fake_pipeline.calls[0]
    assert options.hotwords == "Kubernetes, Grafana" and options.speech.chunk_size == 12


@pytest.mark.parametrize(
    ("form", "param"),
    [
        ({"vad_onset": "0.3", "vad_offset": "0.5"}, None),
        ({"chunk_size": "60"}, "chunk_size"),
        ({"vad_onset": "2"}, "vad_onset"),
    ],
)
def test_bad_knobs_are_422(client, sample_bytes, fake_pipeline, form, param):
    for path, fields in (("/transcribe", {}), ("/v1/audio/transcriptions", {"model": "whisper-1"})):
        reply = client.post(path, data={**fields, **form}, files={"file": ("call.wav", sample_bytes)})
        assert reply.status_code == 422, reply.text
        error = reply.json()["error"]
        if param is not None:
            assert param in error["message"] and error.get("param", param) == param
    assert fake_pipeline.calls == []
