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
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.support.bombs import one_hz_wav, silent_flac
from tests.support.hostile_clients import BOUNDARY, PeakRss, health, multipart_head, open_upload, read_status, trickle
from tests.support.server import RunningServer, running_server, write_tiled_sample
from tests.support.waiting import wait_for


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
