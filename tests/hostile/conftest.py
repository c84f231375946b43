"""Hostile-client tier: the real server on loopback, attacked the way issue 11 describes.

Each attack is bounded in time and count. The server runs the bundled model on the CPU with
small limits, so the bounds show quickly: 30 min of audio at most (110 MiB of samples),
2 transcriptions admitted at once, 2 s of upload stall tolerated.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.server import RunningServer
from tests.support.server_fixtures import server_or_fail

MAX_AUDIO_SECONDS = 1800
STALL_S = 2.0
LIMITS = {
    "DEVICE": "cpu",
    "WHISPER_MODEL": "bundled-tiny.en",
    "VAD_METHOD": "silero",
    "ENABLE_ALIGNMENT": "false",
    "ENABLE_DIARIZATION": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_TOKEN": "",
    "MAX_AUDIO_SECONDS": str(MAX_AUDIO_SECONDS),
    "MAX_UPLOAD_MB": "50",
    "MAX_PENDING_REQUESTS": "2",
    "UPLOAD_STALL_TIMEOUT_S": str(STALL_S),
    "UPLOAD_MIN_RATE_KIB_S": "64",
}


@contextmanager
def start(tmp: Path, **extra: str) -> Iterator[RunningServer]:
    (tmp / "uploads").mkdir(parents=True)
    env = {**LIMITS, "MODEL_CACHE_DIR": str(tmp / "models"), "TEMP_DIR": str(tmp / "uploads"), **extra}
    with server_or_fail(env, tmp / "server.log", timeout_s=600) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start(tmp_path_factory.mktemp("hostile")) as running:
        yield running


def uploads_dir(server: RunningServer) -> Path:
    return server.log.parent / "uploads"
