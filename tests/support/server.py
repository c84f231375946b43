"""Start the real service as a subprocess (`python -m app`), wait for readiness, stop it.

Shared by the end-to-end tests and the benchmarks, so both drive the server exactly as the
README starts it.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[2]


class ServerDidNotStart(RuntimeError):
    pass


@dataclass
class RunningServer:
    url: str
    log: Path
    process: subprocess.Popen[bytes]
    started_at: float
    ready_after_s: float = 0.0
    health: dict = field(default_factory=dict)

    def client(self, timeout: float = 600.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)


def offline_cpu_env(root: Path, **settings: str) -> dict[str, str]:
    """A server's environment for a test: on the CPU, no hub, caches under ``root``; ``settings`` added."""
    return {
        "MODEL_CACHE_DIR": str(root / "models"),
        "DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
        "HF_TOKEN": "",
        **settings,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(
    env: dict[str, str],
    log: Path,
    *,
    timeout_s: float = 900.0,
    wrapper: tuple[str, ...] = (),
    every_stage: bool = False,
) -> Iterator[RunningServer]:
    """The service on a free loopback port with ``env`` added to this process's environment.

    ``wrapper`` runs in front of the server's command (e.g. ``strace -f -o FILE``).
    ``every_stage``: wait for the diarizer too (it loads after ``/health`` first answers 200)."""
    port = free_port()
    environment = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "PYTHONUNBUFFERED": "1", **env}
    started = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "app"], cwd=REPO, env=environment, stdout=sink, stderr=subprocess.STDOUT
        )
    server = RunningServer(f"http://127.0.0.1:{port}", log, process, started)
    try:
        _wait_until_ready(server, timeout_s)
        if every_stage:
            wait_for_every_stage(server, timeout_s)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_for_every_stage(server: RunningServer, timeout_s: float = 600.0) -> float:
    """Wait until ``/health?require=all`` says every stage is in (diarization loads after ready);
    the seconds since the server's process started."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            reply = httpx.get(f"{server.url}/health", params={"require": "all"}, timeout=2)
            if reply.status_code == 200:
                server.health = reply.json()
                return time.monotonic() - server.started_at
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ServerDidNotStart(f"stages still loading after {timeout_s} s:\n{server.log.read_text()[-4000:]}")


def _wait_until_ready(server: RunningServer, timeout_s: float) -> None:
    deadline = server.started_at + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerDidNotStart(f"server exited during startup:\n{server.log.read_text()[-4000:]}")
        try:
            reply = httpx.get(f"{server.url}/health", timeout=2)
            if reply.status_code == 200:
                server.ready_after_s = time.monotonic() - server.started_at
                server.health = reply.json()
                return
            if reply.json().get("status") == "failed":  # it will not get better: say why now
                raise ServerDidNotStart(f"server failed to start:\n{server.log.read_text()[-4000:]}")
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    raise ServerDidNotStart(f"server not ready after {timeout_s} s:\n{server.log.read_text()[-4000:]}")


def post_audio(client: httpx.Client, audio: Path, **form: str) -> tuple[float, dict[str, Any]]:
    """POST ``audio`` to /transcribe with ``form``; the wall time and the JSON reply."""
    started = time.perf_counter()
    with audio.open("rb") as f:
        reply = client.post("/transcribe", files={"file": (audio.name, f, "audio/wav")}, data=form)
    reply.raise_for_status()
    return time.perf_counter() - started, reply.json()


@contextmanager
def health_probe(server: RunningServer, period_s: float = 0.05) -> Iterator[list[float]]:
    """Poll /health while the block runs; yields the list its answer times go into when it ends.

    The poller is a process of its own: in this one, the benchmark's client threads (each
    building and sending an upload) would hold the GIL and delay the poller's own reads, and
    the times would be the client's as much as the server's.
    """
    context = multiprocessing.get_context("spawn")
    stop, answers = context.Event(), context.Queue()
    poller = context.Process(target=_poll_health, args=(server.url, period_s, stop, answers), daemon=True)
    poller.start()
    latencies: list[float] = []
    try:
        yield latencies
    finally:
        stop.set()
        latencies.extend(answers.get(timeout=60))
        poller.join(timeout=10)


def _poll_health(url: str, period_s: float, stop: Any, answers: Any) -> None:
    latencies: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get("/health")
            latencies.append(time.perf_counter() - started)
            stop.wait(period_s)
    answers.put(latencies)


def tiled_sample(seconds: float, offset: float = 0.0) -> np.ndarray:
    """The pyannote sample call repeated, from ``offset`` s on, for ``seconds`` (16 kHz float32)."""
    from app.serving.warmup import sample_speech

    clip = sample_speech()
    first, samples = int(offset * 16000), int(seconds * 16000)
    return np.tile(clip, int(np.ceil((first + samples) / clip.shape[0])))[first : first + samples]


def write_tiled_sample(path: Path, seconds: float, offset: float = 0.0) -> Path:
    """``tiled_sample`` as a 16 kHz mono 16-bit WAV file."""
    audio = tiled_sample(seconds, offset)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(audio, -1, 1 - 1 / 32768) * 32768).astype("<i2").tobytes())
    return path
