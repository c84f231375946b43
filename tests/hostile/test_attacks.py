"""The attacks of issue 11 against the real server: status, time to answer, peak memory, disk."""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.hostile.conftest import MAX_AUDIO_SECONDS, STALL_S, start, uploads_dir
from tests.support.bombs import flac_without_total, one_hz_wav, silent_flac, silent_opus
from tests.support.hostile_clients import PeakRss, health, multipart_head, open_upload, read_status, trickle
from tests.support.live_player import pcm16
from tests.support.server import write_tiled_sample
from tests.support.waiting import wait_for

LIMIT_MB = MAX_AUDIO_SECONDS * 16000 * 4 / 2**20  # the samples MAX_AUDIO_SECONDS decodes to
SLACK_MB = 150  # ffmpeg pipes, allocator arenas, one request's Python objects


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    return {
        "wav-1hz": one_hz_wav(folder / "one-hz.wav"),
        "flac-5h-silence": silent_flac(folder / "silence-5h.flac"),
        "opus-1h-silence": silent_opus(folder / "silence-1h.ogg"),
        "flac-no-total": flac_without_total(folder / "silence-5h.flac", folder / "no-total.flac"),
    }


def _post(server, path: Path, timeout: float = 120) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    with path.open("rb") as f:
        reply = httpx.post(f"{server.url}/transcribe", files={"file": (path.name, f)}, timeout=timeout)
    return reply, time.monotonic() - started


@pytest.mark.parametrize("bomb", ["wav-1hz", "flac-5h-silence", "opus-1h-silence"])
def test_a_decompression_bomb_is_refused_by_its_header_before_decoding(server, bombs, bomb):
    with PeakRss(server.process.pid) as rss:
        reply, seconds = _post(server, bombs[bomb])
    assert reply.status_code == 413, reply.text
    assert f"longer than the limit of {MAX_AUDIO_SECONDS} s (its header says" in reply.json()["error"]["message"]
    assert rss.growth_mb < 100, f"{rss.growth_mb:.0f} MB peak growth"
    print(f"\n{bomb}: {reply.status_code} in {seconds:.2f} s, peak RSS +{rss.growth_mb:.0f} MB")


def test_a_bomb_that_hides_its_length_is_still_cut_at_the_limit(server, bombs):
    """A FLAC that declares "length unknown" is decoded, and stopped at MAX_AUDIO_SECONDS."""
    with PeakRss(server.process.pid) as rss:
        reply, seconds = _post(server, bombs["flac-no-total"])
    assert reply.status_code == 413, reply.text
    assert "header says" not in reply.json()["error"]["message"]
    assert f"longer than the limit of {MAX_AUDIO_SECONDS} s" in reply.json()["error"]["message"]
    assert rss.growth_mb < LIMIT_MB + SLACK_MB, f"{rss.growth_mb:.0f} MB peak growth"
    print(f"\nlying flac: {reply.status_code} in {seconds:.1f} s, peak RSS +{rss.growth_mb:.0f} MB")


def test_bombs_at_once_stay_within_the_memory_budget(server, bombs):
    """Concurrent bombs that hide their length: each is cut at the limit; together they never pass the budget."""
    replies: list[int] = []
    with PeakRss(server.process.pid) as rss:
        threads = [
            threading.Thread(target=lambda: replies.append(_post(server, bombs["flac-no-total"])[0].status_code))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert sorted(replies) and set(replies) <= {413, 503}  # 503: over MAX_PENDING_REQUESTS=2
    budget = health(server)["queue"]["budgets"]["memory"]
    assert budget["used_mb"] == 0 and budget["peak_mb"] <= 2 * LIMIT_MB + 1
    assert rss.growth_mb < 2 * LIMIT_MB + SLACK_MB, f"{rss.growth_mb:.0f} MB peak growth"
    print(f"\n4 bombs at once: {sorted(replies)}, peak RSS +{rss.growth_mb:.0f} MB")


def test_admission_comes_before_the_upload(server):
    """Two uploads held open fill MAX_PENDING_REQUESTS=2; a third is refused before its body."""
    size = 40 * 2**20  # under MAX_UPLOAD_MB=50
    held = [open_upload(server, size) for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(multipart_head() + b"\0" * 65536)
        wait_for(lambda: health(server)["queue"]["in_flight"] == 2, 10, "two uploads admitted")
        third = open_upload(server, size)
        started = time.monotonic()
        status, head = read_status(third, timeout_s=10)  # we never send its body
        assert status == 503, head
        assert b"retry-after" in head.lower()
        assert time.monotonic() - started < 2
        third.close()
        disk = health(server)["queue"]["budgets"]["disk"]
        assert disk["used_mb"] < 1, "only what the held uploads sent is on disk"
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: health(server)["queue"]["in_flight"] == 0, 10, "held uploads released")
    wait_for(lambda: not list(uploads_dir(server).iterdir()), 10, "their temp files removed")
    log = server.log.read_text()
    assert "Client disconnected during its upload" in log
    assert "Unhandled error" not in log


def test_a_stalled_upload_is_cut_with_408(server):
    sock = open_upload(server, 10 * 2**20)
    sock.sendall(multipart_head() + b"\0" * 1000)
    started = time.monotonic()
    status, head = read_status(sock, timeout_s=STALL_S + 10)
    assert status == 408, head
    assert STALL_S - 0.5 < time.monotonic() - started < STALL_S + 5
    sock.close()
    wait_for(lambda: not list(uploads_dir(server).iterdir()), 10, "temp file removed")


def test_a_trickling_upload_is_cut_with_408(server):
    """One byte every half second: under UPLOAD_MIN_RATE_KIB_S once the stall window has passed."""
    status, head, seconds = trickle(server, every_s=0.5, for_at_most_s=20)
    assert status == 408, head
    assert STALL_S - 0.5 < seconds < STALL_S + 5  # cut by the rate rule: bytes never stall for 2 s
    wait_for(lambda: not list(uploads_dir(server).iterdir()), 10, "temp file removed")


def test_a_client_that_leaves_stops_its_transcription(server, tmp_path):
    audio = write_tiled_sample(tmp_path / "long.wav", 600)  # minutes of CPU work if it ran to the end
    body = multipart_head("long.wav") + audio.read_bytes() + b"\r\n--hostile--\r\n"
    cancelled_before = health(server)["queue"]["cancelled"]
    sock = open_upload(server, len(body))
    sock.sendall(body)
    wait_for(lambda: health(server)["queue"]["in_flight"] == 1, 10, "the request admitted")
    time.sleep(1.0)  # decoding and into the model
    sock.close()
    seconds = wait_for(lambda: health(server)["queue"]["in_flight"] == 0, 30, "the work stopped")
    assert health(server)["queue"]["cancelled"] == cancelled_before + 1
    assert "Client disconnected" in server.log.read_text()
    print(f"\nclient left: work stopped {seconds:.1f} s later")


def test_sigterm_drains_within_the_grace_period(tmp_path, sample_wav):
    # Long enough for the live session's 8 s turn on a loaded 2-core CI machine (it took over
    # 4 s there beside the long request), far too short for the long request's minutes of work.
    grace = 10.0
    audio = write_tiled_sample(tmp_path / "long.wav", 600)
    with start(tmp_path / "drain", SHUTDOWN_GRACE_S=str(grace)) as server:
        replies: list[httpx.Response] = []
        live = _live_session_with_a_pending_turn(server.url, sample_wav)

        def long_request() -> None:
            with audio.open("rb") as f:
                replies.append(httpx.post(f"{server.url}/transcribe", files={"file": ("long.wav", f)}, timeout=60))

        running = threading.Thread(target=long_request, daemon=True)
        running.start()
        wait_for(lambda: health(server)["queue"]["in_flight"] == 1, 10, "the request admitted")
        signalled = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        ready = httpx.get(f"{server.url}/health", timeout=5)
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        assert httpx.get(f"{server.url}/health/live", timeout=5).status_code == 200
        with audio.open("rb") as f:
            refused = httpx.post(f"{server.url}/transcribe", files={"file": ("x.wav", f)}, timeout=10)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
        running.join(30)
        [reply] = replies
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "cancelled", reply.text
        # The live session transcribed its open turn, said why it ends, and was closed.
        events, code = _until_closed(live)
        assert [e["type"] for e in events][-2:] == ["conversation.item.input_audio_transcription.completed", "error"]
        assert "Hello" in events[-2]["transcript"] and events[-1]["error"]["code"] == "server_shutting_down"
        assert code == 1012
        server.process.wait(timeout=grace + 10)
        exited_after = time.monotonic() - signalled
        assert exited_after < grace + 8
        assert not list((tmp_path / "drain" / "uploads").iterdir())
        print(f"\nSIGTERM with a request in flight: exited after {exited_after:.1f} s (grace {grace:g} s)")


def _live_session_with_a_pending_turn(url: str, sample_wav: Path) -> ClientConnection:
    """A live session with manual commits, holding 8 s of the call uncommitted."""
    socket = connect(url.replace("http://", "ws://") + "/v1/realtime?intent=transcription")
    assert json.loads(socket.recv())["type"] == "session.created"
    socket.send(json.dumps({"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}}))
    assert json.loads(socket.recv())["type"] == "session.updated"
    pcm = pcm16(sample_wav)[: 24000 * 2 * 8]
    socket.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}))
    return socket


def _until_closed(socket: ClientConnection) -> tuple[list[dict], int | None]:
    events = []
    try:
        while True:
            events.append(json.loads(socket.recv(timeout=30)))
    except ConnectionClosed as closed:
        return events, closed.rcvd.code if closed.rcvd else None


def test_zz_no_temp_file_remains(server):
    assert not list(uploads_dir(server).iterdir())
