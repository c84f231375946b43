"""Hostile clients against the real server: what each attack gets, how fast, and what it costs.

    python -m bench.attacks                      # the service's default limits, bundled tiny.en
    python -m bench.attacks --env MAX_PENDING_REQUESTS=2 --env MAX_AUDIO_SECONDS=1800

Prints one row per attack: the HTTP status, seconds to the answer, the server's peak RSS growth
during the attack (VmHWM, reset before each one) and the temporary files left behind. The
helpers here are also the hostile test tier's (tests/hostile/).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from bench.server import RunningServer, running_server, write_tiled_sample

BOUNDARY = "hostile"


def one_hz_wav(path: Path, samples: int = 20_000) -> Path:
    """A 40 KB WAV at a 1 Hz sample rate: 5.6 hours once resampled to 16 kHz."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(1)
        wav.writeframes((np.sin(np.arange(samples)) * 8000).astype("<i2").tobytes())
    return path


def silent_flac(path: Path, seconds: int = 18_000) -> Path:
    """About 3.4 MB of FLAC that decodes to five hours of silence."""
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", str(seconds),
         "-c:a", "flac", str(path)],
        check=True, timeout=300,
    )  # fmt: skip
    return path


def flac_without_total(source: Path, target: Path) -> Path:
    """``source`` with STREAMINFO's total samples set to 0, FLAC's "unknown": a bomb hiding its length."""
    data = bytearray(source.read_bytes())
    data[18:26] = (int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)).to_bytes(8, "big")
    target.write_bytes(bytes(data))
    return target


def silent_opus(path: Path, seconds: int = 3600) -> Path:
    """A few hundred KB of Ogg Opus that decodes to an hour of silence (its length is in the container)."""
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", str(seconds),
         "-c:a", "libopus", "-b:a", "6k", str(path)],
        check=True, timeout=300,
    )  # fmt: skip
    return path


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


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout_s} s")


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


def post_file(server: RunningServer, path: Path, timeout: float = 600) -> tuple[int, float]:
    started = time.monotonic()
    with path.open("rb") as f:
        reply = httpx.post(f"{server.url}/transcribe", files={"file": (path.name, f)}, timeout=timeout)
    return reply.status_code, time.monotonic() - started


def _row(name: str, status: str, seconds: float, rss: PeakRss | None, uploads: Path) -> None:
    left = len(list(uploads.iterdir()))
    growth = f"+{rss.growth_mb:.0f}" if rss else "–"
    print(f"| {name} | {status} | {seconds:.1f} | {growth} | {left} |", flush=True)


def _held_uploads(server: RunningServer, clients: int, mib: int) -> None:
    """``clients`` uploads declaring ``mib`` MiB each, opened at once and then held mid-body."""
    started = time.monotonic()
    held = [open_upload(server, mib * 2**20) for _ in range(clients)]
    for sock in held:
        sock.sendall(multipart_head() + b"\0" * 2**20)
    time.sleep(1.0)
    queue = health(server)["queue"]
    refused = 0
    for sock in held:
        with contextlib.suppress(OSError):  # no answer: admitted, waiting for the rest of its body
            refused += read_status(sock, timeout_s=0.5)[0] == 503
        sock.close()
    print(
        f"| {clients} uploads declaring {mib} MiB, held mid-body | {refused} refused with 503 at once, "
        f"{queue['in_flight']} admitted | {time.monotonic() - started:.1f} | disk in use "
        f"{queue['budgets']['disk']['used_mb']:.0f} MB | – |",
        flush=True,
    )
    wait_for(lambda: health(server)["queue"]["in_flight"] == 0, 30, "held uploads released")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="attacks-"))
    uploads = work / "uploads"
    uploads.mkdir()
    env = {
        "DEVICE": "cpu",
        "WHISPER_MODEL": "bundled-tiny.en",
        "HF_HUB_OFFLINE": "1",
        "MODEL_CACHE_DIR": str(work / "models"),
        "TEMP_DIR": str(uploads),
        "SHUTDOWN_GRACE_S": "5",
        **dict(item.split("=", 1) for item in args.env),
    }
    flac = "3 MB FLAC, 5 h of silence"
    bombs = {"40 KB WAV at 1 Hz (5.6 h)": one_hz_wav(work / "bomb.wav"), flac: silent_flac(work / "bomb.flac")}
    long_audio = write_tiled_sample(work / "long.wav", 600)
    with running_server(env, work / "server.log", timeout_s=900) as server:
        limits = health(server)["queue"]
        print(f"\nserver limits: {limits['limit']} admitted, budgets {limits['budgets']}")
        print("\n| attack | status | s to answer | peak RSS MB | temp files left |\n|---|---|---|---|---|")
        pid = server.process.pid
        for name, path in bombs.items():
            with PeakRss(pid) as rss:
                status, seconds = post_file(server, path)
            _row(name, str(status), seconds, rss, uploads)
        statuses: list[int] = []
        with PeakRss(pid) as rss:
            started = time.monotonic()
            threads = [
                threading.Thread(target=lambda: statuses.append(post_file(server, bombs[flac])[0])) for _ in range(4)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        _row("4 FLAC bombs at once", "/".join(map(str, sorted(statuses))), time.monotonic() - started, rss, uploads)

        _held_uploads(server, clients=12, mib=200)

        status, _, seconds = trickle(server, every_s=1.0, for_at_most_s=300)
        _row("body at 1 byte per second", str(status), seconds, None, uploads)

        body = multipart_head("long.wav") + long_audio.read_bytes() + f"\r\n--{BOUNDARY}--\r\n".encode()
        sock = open_upload(server, len(body))
        sock.sendall(body)
        wait_for(lambda: health(server)["queue"]["in_flight"] == 1, 30, "admitted")
        time.sleep(2.0)
        sock.close()
        answered = wait_for(lambda: health(server)["queue"]["in_flight"] == 0, 600, "request ended")
        stopped = wait_for(lambda: health(server)["queue"]["budgets"]["memory"]["used_mb"] == 0, 600, "work stopped")
        _row(
            "client leaves a 10-min transcription",
            f"ended after {answered:.1f} s; work stopped",
            stopped,
            None,
            uploads,
        )

        statuses.clear()
        running = threading.Thread(target=lambda: statuses.append(post_file(server, long_audio)[0]), daemon=True)
        running.start()
        wait_for(lambda: health(server)["queue"]["in_flight"] == 1, 30, "admitted")
        signalled = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        server.process.wait(timeout=120)
        running.join(10)
        exited = time.monotonic() - signalled
        _row(
            f"SIGTERM, 1 in flight (grace {env['SHUTDOWN_GRACE_S']} s)",
            f"exit; in flight: {statuses}",
            exited,
            None,
            uploads,
        )


if __name__ == "__main__":
    main()
