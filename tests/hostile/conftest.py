"""Hostile-client tier: the real server on loopback, attacked the way issue 11 describes.

Each attack is bounded in time and count. The server runs the bundled model on the CPU with
small limits, so the bounds show quickly: 30 min of audio at most (110 MiB of samples),
2 transcriptions admitted at once, 2 s of upload stall tolerated.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bench.server import RunningServer, ServerDidNotStart, running_server

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
    try:
        with running_server(env, tmp / "server.log", timeout_s=600) as server:
            yield server
    except ServerDidNotStart as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start(tmp_path_factory.mktemp("hostile")) as running:
        yield running


def uploads_dir(server: RunningServer) -> Path:
    return server.log.parent / "uploads"


def health(server: RunningServer) -> dict:
    return httpx.get(f"{server.url}/health", timeout=5).json()


def wait_for(condition, timeout_s: float = 30.0, what: str = "condition") -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout_s} s")


class PeakRss:
    """The server's peak resident memory over a block: VmHWM, reset at the start (clear_refs 5)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.growth_mb = 0.0

    def _status(self, field: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        raise KeyError(field)

    def __enter__(self) -> PeakRss:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.before = self._status("VmRSS")
        return self

    def __exit__(self, *_: object) -> None:
        self.growth_mb = self._status("VmHWM") - self.before


def multipart_head(boundary: str, filename: str = "a.bin") -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def open_upload(server: RunningServer, content_length: int, boundary: str = "hostile") -> socket.socket:
    """A raw connection that has sent the request line and headers, and nothing of the body."""
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        (
            "POST /transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {content_length}\r\n\r\n"
        ).encode()
    )
    return sock


def read_status(sock: socket.socket, timeout_s: float = 30.0) -> tuple[int, bytes]:
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data
