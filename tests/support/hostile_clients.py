"""Hostile clients' tools: raw sockets that hold or trickle an upload, and a process's peak memory."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx

from tests.support.server import RunningServer

BOUNDARY = "hostile"


class PeakRss:
    """A process's peak resident memory over a block: VmHWM, reset at the start (clear_refs 5)."""

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
        self.growth_mb = max(self._status("VmHWM") - self.before, 0.0)


def multipart_head(filename: str = "a.bin") -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def open_upload(server: RunningServer, content_length: int) -> socket.socket:
    """A raw connection that has sent the request line and headers, and nothing of the body."""
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        (
            "POST /transcribe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {content_length}\r\n\r\n"
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


def health(server: RunningServer) -> dict:
    return httpx.get(f"{server.url}/health", timeout=5).json()


def trickle(server: RunningServer, every_s: float, for_at_most_s: float) -> tuple[int, bytes, float]:
    """An upload that sends one byte every ``every_s``: the status and head of the answer, and when."""
    sock = open_upload(server, 10 * 2**20)
    sock.sendall(multipart_head())
    started = time.monotonic()
    answer: list[tuple[int, bytes]] = []
    reader = threading.Thread(target=lambda: answer.append(read_status(sock, for_at_most_s)), daemon=True)
    reader.start()
    while reader.is_alive() and time.monotonic() - started < for_at_most_s:
        try:
            sock.sendall(b"\0")
        except OSError:
            break
        time.sleep(every_s)
    reader.join(10)
    sock.close()
    status, head = answer[0] if answer else (0, b"")
    return status, head, time.monotonic() - started
