"""Models per request on the real server: the bundled base is the default, the bundled tiny.en
loads when a request names it (through the openai SDK and /transcribe), is unloaded when idle
(MODEL_IDLE_S=3 on the shared server) and loads again for the next request."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.scoring import read_stm_text, word_error_rate

pytestmark = pytest.mark.e2e

TINY = "bundled-tiny.en"


def _model(http: httpx.Client, model_id: str) -> dict:
    reply = http.get(f"/v1/models/{model_id}")
    assert reply.status_code == 200, reply.text
    return reply.json()


def _wait_for_state(http: httpx.Client, model_id: str, state: str, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while (card := _model(http, model_id))["state"] != state:
        assert time.monotonic() < deadline, f"{model_id} never became {state}: {card}"
        time.sleep(0.2)
    return card


def test_a_request_names_another_model_which_loads_transcribes_unloads_and_loads_again(
    sdk: openai.OpenAI, http: httpx.Client, sample_wav: Path, sample_stm: Path
) -> None:
    before = _model(http, TINY)
    assert before["default"] is False
    if before["state"] == "loaded":  # another test used it moments ago
        before = _wait_for_state(http, TINY, "unloaded")
    with sample_wav.open("rb") as audio:
        tiny = sdk.audio.transcriptions.create(model=TINY, file=audio, response_format="verbose_json")
    with sample_wav.open("rb") as audio:
        base = sdk.audio.transcriptions.create(model="whisper-1", file=audio, response_format="verbose_json")
    reference = read_stm_text(sample_stm)
    assert word_error_rate(reference, tiny.text) <= 0.45, tiny.text
    assert tiny.text != base.text  # a different model answered
    assert tiny.language == "english"

    loaded = _model(http, TINY)
    assert loaded["loads"] == before["loads"] + 1 and loaded["in_use"] == 0
    health = {m["id"]: m for m in http.get("/health").json()["models"]}
    assert health[TINY]["loads"] == loaded["loads"] and health["bundled-base"]["state"] == "loaded"

    unloaded = _wait_for_state(http, TINY, "unloaded")  # MODEL_IDLE_S=3
    assert unloaded["unloads"] == before["unloads"] + 1
    assert _model(http, "bundled-base")["state"] == "loaded"  # the default stays

    # The next request gets the model back (whisper-asr-webservice #321 crashed here).
    with sample_wav.open("rb") as audio:
        reply = http.post("/transcribe", data={"model": TINY, "word_timestamps": "false"}, files={"file": audio})
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == TINY and reply.json()["text"] == tiny.text
    assert _model(http, TINY)["loads"] == before["loads"] + 2
    metrics = http.get("/metrics").text
    assert f'transcription_model_loads_total{{model="{TINY}"}}' in metrics


def test_an_english_only_model_refuses_german_and_an_unknown_model_is_404(sdk: openai.OpenAI, sample_wav: Path):
    with sample_wav.open("rb") as audio, pytest.raises(openai.UnprocessableEntityError) as german:
        sdk.audio.transcriptions.create(model=TINY, file=audio, language="de")
    assert "English-only" in str(german.value)
    with sample_wav.open("rb") as audio, pytest.raises(openai.NotFoundError) as unknown:
        sdk.audio.transcriptions.create(model="large-v9", file=audio)
    assert unknown.value.code == "model_not_found" and TINY in str(unknown.value)
