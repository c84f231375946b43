"""REALTIME_PARTIAL_MODEL on the real server: the bundled base decodes a live session's committed
turns and the bundled tiny.en its partials, loaded after ready and kept loaded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.live_player import COMPLETED, DELTA, pcm16, play
from tests.support.server import offline_cpu_env, running_server
from tests.support.waiting import wait_for


def _health(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/health", timeout=10).json()


def _model(url: str, model_id: str) -> dict[str, Any]:
    return next(m for m in _health(url)["models"] if m["id"] == model_id)


def test_tiny_decodes_the_partials_and_base_the_turns(tmp_path: Path, sample_wav: Path):
    env = offline_cpu_env(
        tmp_path,
        WHISPER_MODEL="bundled-base",
        WHISPER_MODELS="bundled-tiny.en",
        REALTIME_PARTIAL_MODEL="bundled-tiny.en",
        MODEL_IDLE_S="1",  # kept loaded all the same
        ENABLE_DIARIZATION="false",
    )
    with running_server(env, tmp_path / "server.log") as server:
        wait_for(lambda: _health(server.url)["queue"]["realtime"]["partial_model"] == "bundled-tiny.en", 120, "tiny")
        tiny = _model(server.url, "bundled-tiny.en")
        assert tiny["state"] == "loaded" and tiny["loads"] == 1
        assert _model(server.url, "bundled-base")["default"]
        played = time.time()
        session = {
            "type": "transcription",
            "audio": {"input": {"transcription": {"language": "en"}, "turn_detection": {"type": "server_vad"}}},
        }
        url = server.url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
        run = asyncio.run(play(url, pcm16(sample_wav)[: 24000 * 2 * 16], session=session, speed=1.5))
        assert run.of_type(DELTA), "partial words were shown"
        finals = run.of_type(COMPLETED)
        assert finals and "hello" in run.transcript.lower()
        time.sleep(2)  # past MODEL_IDLE_S
        tiny = _model(server.url, "bundled-tiny.en")
        assert tiny["state"] == "loaded" and tiny["unloads"] == 0
        assert tiny["idle_since"] > played, "the partials used tiny.en"
    log = (tmp_path / "server.log").read_text()
    assert "Live partials are decoded by bundled-tiny.en" in log
