"""End-to-end tier: the real server in a subprocess, the bundled model, real speech over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from app.engine.whisper.ctranslate2 import CTranslate2Engine
from app.engine.whisper.sources import resolve_whisper_source
from app.engine.whisper.stage import Whisper
from tests.support.server import RunningServer
from tests.support.server_fixtures import server_or_fail


@pytest.fixture(scope="session")
def upload_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uploads")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, upload_dir: Path) -> Iterator[RunningServer]:
    """`python -m app` exactly as the README starts it, on a free port, with its own caches."""
    root = tmp_path_factory.mktemp("server")
    env = {
        "MODEL_CACHE_DIR": str(root / "models"),
        "TEMP_DIR": str(upload_dir),
        "DEVICE": "cpu",
        "WHISPER_MODEL": "auto",
        # A second model a request may name: loaded on first use, unloaded 3 s after (test_models_server.py).
        "WHISPER_MODELS": "bundled-tiny.en",
        "MODEL_IDLE_S": "3",
        "HF_HUB_OFFLINE": "1",
        "HF_TOKEN": "",
    }
    with server_or_fail(env, root / "server.log", timeout_s=600) as running:
        yield running


@pytest.fixture(scope="session")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="session")
def sdk(server: RunningServer) -> Iterator[openai.OpenAI]:
    """The openai SDK on the server. No retries: a 503 would otherwise be retried silently and
    hide what the server said."""
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-needed", max_retries=0, timeout=600) as client:
        yield client


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> Whisper:
    """The bundled multilingual base, in this process, for tests of the stages themselves."""
    source = resolve_whisper_source("bundled-base", "cpu", tmp_path_factory.mktemp("models"))
    return Whisper(
        CTranslate2Engine.load(
            source, device="cpu", compute_type="int8", cpu_threads=2, download_root="unused", hf_token=None
        )
    )
