"""ENGINE=torch serves the routes users call: the real server, the bundled multilingual base
(converted from CTranslate2 at load), the real sample call, HTTP and the ``openai`` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.scoring import read_stm_text, word_error_rate
from tests.support.server import RunningServer, offline_cpu_env, post_audio
from tests.support.server_fixtures import server_or_fail


@pytest.fixture(scope="module")
def torch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("torch-server")
    (root / "uploads").mkdir()
    env = offline_cpu_env(root, ENGINE="torch", TEMP_DIR=str(root / "uploads"), WHISPER_MODEL="bundled-base")
    with server_or_fail(env, root / "server.log", timeout_s=600) as running:
        yield running


def test_health_names_the_engine(torch_server: RunningServer):
    health = torch_server.health
    assert health["engine"] == "torch" and health["model"] == "bundled-base"


def test_words_and_speakers_of_the_sample(
    torch_server: RunningServer, server: RunningServer, sample_wav: Path, sample_stm: Path
):
    form = {"word_timestamps": "true", "diarize": "true"}
    with torch_server.client() as client:
        _, ours = post_audio(client, sample_wav, **form)
        batching = client.get("/health").json()["queue"]["batching"]
    with server.client() as client:  # the session's server: CTranslate2 (int8) on the same weights
        _, theirs = post_audio(client, sample_wav, **form)
    reference = read_stm_text(sample_stm)
    assert word_error_rate(reference, ours["text"]) <= word_error_rate(reference, theirs["text"]) + 0.02
    assert ours["language"] == "en"
    words = [w for s in ours["segments"] for w in s["words"]]
    assert len(words) >= 50 and all(w["start"] <= w["end"] for w in words)
    assert len({s.get("speaker") for s in ours["segments"]} - {None}) >= 2
    assert batching["decoded_windows"] >= 1 and batching["decoded_tokens"] >= 50


def test_openai_sdk_transcribes_and_translates(torch_server: RunningServer, sample_wav: Path, sample_stm: Path):
    with openai.OpenAI(base_url=f"{torch_server.url}/v1", api_key="x", max_retries=0, timeout=600) as sdk:
        with sample_wav.open("rb") as audio:
            verbose = sdk.audio.transcriptions.create(
                model="whisper-1", file=audio, response_format="verbose_json", timestamp_granularities=["word"]
            )
        with sample_wav.open("rb") as audio:
            translated = sdk.audio.translations.create(model="whisper-1", file=audio)
    assert word_error_rate(read_stm_text(sample_stm), verbose.text) <= 0.30
    assert verbose.language == "english" and verbose.words
    assert translated.text.strip()
