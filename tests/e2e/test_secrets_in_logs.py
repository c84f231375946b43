"""No key reaches the server's log: a browser's live session that authenticates with
``?api_key=`` (valid or not), a key in a subprotocol or a header, and secret-named query
parameters on HTTP routes — uvicorn's access and error lines included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.support.server import offline_cpu_env
from tests.support.server_fixtures import server_or_fail

KEY = "live-browser-key-0123456789"
HEADER_KEY = "header-client-key-9876543210"
BAD = "not-a-key-but-still-secret-5555"
TOKEN = "webhook-token-in-a-query-4444"


def _first_event(url: str, **kwargs: object) -> dict:
    with connect(url, open_timeout=30, close_timeout=5, **kwargs) as ws:
        return json.loads(ws.recv(timeout=30))


@pytest.fixture(scope="module")
def log_after_every_kind_of_key(tmp_path_factory: pytest.TempPathFactory, sample_wav: Path) -> str:
    root = tmp_path_factory.mktemp("secrets")
    env = offline_cpu_env(
        root,
        ENABLE_DIARIZATION="false",
        WARMUP="false",
        API_KEYS=f"browser:{KEY},cli:{HEADER_KEY}",
        LOG_LEVEL="debug",
    )
    with server_or_fail(env, root / "server.log", timeout_s=300, every_stage=False) as server:
        ws_url = server.url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
        assert _first_event(f"{ws_url}&api_key={KEY}")["type"] == "session.created"
        assert _first_event(f"{ws_url}&api_key={BAD}")["error"]["code"] == "invalid_api_key"
        assert _first_event(f"{ws_url}&access_token={BAD}&api_key={KEY}")["type"] == "session.created"
        offered = [f"openai-insecure-api-key.{KEY}", "realtime"]
        assert _first_event(ws_url, subprotocols=offered)["type"] == "session.created"  # type: ignore[arg-type]
        with server.client() as http:
            auth = {"Authorization": f"Bearer {HEADER_KEY}"}
            reply = http.post("/transcribe", files={"file": sample_wav.open("rb")}, headers=auth)
            assert reply.status_code == 200
            assert http.post("/transcribe", headers={"Authorization": f"Bearer {BAD}"}).status_code == 401
            assert (
                http.get("/v1/jobs/nothing", params={"api_key": KEY, "token": TOKEN}, headers=auth).status_code == 404
            )
    return server.log.read_text()


def test_no_key_or_token_is_in_the_log(log_after_every_kind_of_key):
    log = log_after_every_kind_of_key
    for secret in (KEY, HEADER_KEY, BAD, TOKEN):
        assert secret not in log, f"{secret} is in the server's log"


def test_the_log_still_says_what_happened(log_after_every_kind_of_key):
    """Redaction keeps the lines: the handshakes and requests are logged, their secrets replaced."""
    log = log_after_every_kind_of_key
    assert '"WebSocket /v1/realtime?intent=transcription&api_key=[redacted]" [accepted]' in log
    assert "access_token=[redacted]&api_key=[redacted]" in log
    assert "/v1/jobs/nothing?api_key=[redacted]&token=[redacted]" in log
    assert '"POST /transcribe HTTP/1.1" 200' in log and '"POST /transcribe HTTP/1.1" 401' in log
