"""Models per request with the fake pipeline and the real WhisperModels: every route's `model`,
/v1/models and /health states, /metrics loads. Loading real models: tests/e2e/test_models_server.py."""

from __future__ import annotations

import pytest

from tests.api.conftest import FakePipeline, submit, wait_until
from tests.support.metrics import metric_samples

pytestmark = pytest.mark.api


@pytest.fixture
def fake_pipeline() -> FakePipeline:
    return FakePipeline(more_models=("fake-turbo", "fake-small.en"))


def _openai(client, audio: bytes, **form: str):
    return client.post("/v1/audio/transcriptions", data=form, files={"file": ("call.wav", audio, "audio/wav")})


def _states(listing: list[dict]) -> dict[str, str]:
    return {model["id"]: model["state"] for model in listing}


def test_models_list_every_model_with_its_state_and_the_alias(client):
    listing = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in listing] == ["fake-whisper", "fake-turbo", "fake-small.en", "whisper-1"]
    assert _states(listing) == {
        "fake-whisper": "loaded",
        "fake-turbo": "unloaded",
        "fake-small.en": "unloaded",
        "whisper-1": "loaded",
    }
    default = listing[0]
    assert default["default"] is True and default["object"] == "model" and default["loads"] == 1
    assert listing[-1]["default"] is True and not listing[1]["default"]
    assert client.get("/v1/models/fake-turbo").json()["state"] == "unloaded"


def test_a_request_for_another_model_loads_it_and_is_answered_by_it(client, sample_bytes, fake_pipeline):
    reply = _openai(client, sample_bytes, model="fake-turbo", response_format="verbose_json")
    assert reply.status_code == 200, reply.text
    assert fake_pipeline.loaded == ["fake-whisper", "fake-turbo"]
    _, options = fake_pipeline.calls[0]
    assert options.model == "fake-turbo"
    turbo = client.get("/v1/models/fake-turbo").json()
    assert (turbo["state"], turbo["loads"], turbo["in_use"]) == ("loaded", 1, 0)
    assert turbo["loaded_at"] is not None and turbo["idle_since"] is not None
    health = client.get("/health").json()
    assert _states(health["models"])["fake-turbo"] == "loaded"
    loads = metric_samples(client)[("transcription_model_loads_total", (("model", "fake-turbo"),))]
    assert loads == 1


def test_the_default_answers_without_a_model_and_for_whisper_1(client, sample_bytes, fake_pipeline):
    assert client.post("/transcribe", files={"file": ("call.wav", sample_bytes)}).json()["model"] == "fake-whisper"
    assert _openai(client, sample_bytes, model="whisper-1").status_code == 200
    assert [options.model for _, options in fake_pipeline.calls] == ["fake-whisper", "fake-whisper"]
    assert fake_pipeline.loaded == ["fake-whisper"]


def test_the_services_own_form_takes_a_model(client, sample_bytes, fake_pipeline):
    reply = client.post("/transcribe", data={"model": "fake-turbo"}, files={"file": ("call.wav", sample_bytes)})
    assert reply.status_code == 200 and reply.json()["model"] == "fake-turbo"


def test_an_unknown_model_is_404_listing_what_exists_on_every_route(client, sample_bytes, fake_pipeline):
    reply = _openai(client, sample_bytes, model="large-v9")
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    for name in ("fake-whisper", "fake-turbo", "fake-small.en", "whisper-1"):
        assert f"`{name}`" in error["message"]
    own = client.post("/transcribe", data={"model": "large-v9"}, files={"file": ("call.wav", sample_bytes)})
    assert own.status_code == 404 and own.json()["error"]["code"] == "model_not_found"
    assert client.get("/v1/models/large-v9").status_code == 404
    assert fake_pipeline.calls == [] and fake_pipeline.loaded == ["fake-whisper"]


def test_an_english_only_model_refuses_other_languages_and_translation(client, sample_bytes, fake_pipeline):
    german = _openai(client, sample_bytes, model="fake-small.en", language="de")
    assert german.status_code == 422 and "fake-small.en is English-only" in german.json()["error"]["message"]
    translation = client.post(
        "/v1/audio/translations",
        data={"model": "fake-small.en"},
        files={"file": ("call.wav", sample_bytes, "audio/wav")},
    )
    assert translation.status_code == 422
    assert fake_pipeline.loaded == ["fake-whisper"]  # refused before anything loaded


def test_a_job_runs_on_the_model_it_names(make_jobs_client, sample_bytes, fake_pipeline):
    client = make_jobs_client()
    unknown = submit(client, sample_bytes, model="large-v9")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    job = submit(client, sample_bytes, model="fake-turbo").json()
    done = wait_until(client, job["id"])
    assert done["state"] == "succeeded" and done["result"]["model"] == "fake-turbo"
    again = submit(client, sample_bytes, model="fake-whisper").json()
    assert wait_until(client, again["id"])["result"]["model"] == "fake-whisper"  # not the other model's cached result
