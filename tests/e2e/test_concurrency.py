"""Concurrent requests on the real server share Whisper batches and get exactly their own text."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.server import health_probe, post_audio, write_tiled_sample


@pytest.fixture(scope="module")
def requests(media_dir: Path, sample_wav: Path) -> list[tuple[Path, dict[str, str]]]:
    """Files and options that make different Whisper prompts, so some may share batches and some not."""
    german = media_dir / "concurrency-de.wav"
    subprocess.run(
        ["espeak-ng", "-v", "de", "-s", "150", "-w", str(german), "Guten Morgen. Wie geht es Ihnen heute?"],
        check=True,
    )
    long = write_tiled_sample(media_dir / "concurrency-75s.wav", 75.0)
    return [
        (sample_wav, {"language": "en"}),
        (long, {"language": "en"}),
        (sample_wav, {}),  # language identified
        (german, {}),
        (sample_wav, {"language": "en", "initial_prompt": "A phone call about a deposit."}),
    ]


def _texts(body: dict) -> list[str]:
    return [segment["text"] for segment in body["segments"]]


def test_concurrent_requests_get_the_same_text_as_sequential_ones(server, http, requests):
    # One pass per window (temperature [0]): a window that fails the checks is decoded again by
    # sampling, which differs from run to run (the retries' own tests: tests/unit/test_fallback.py).
    common = {"diarize": "false", "temperature[]": "0"}
    alone = [_texts(post_audio(http, path, **common, **form)[1]) for path, form in requests]
    before = http.get("/health").json()["queue"]["batching"]

    def one(index: int) -> list[str]:
        path, form = requests[index % len(requests)]
        with server.client() as own:
            return _texts(post_audio(own, path, **common, **form)[1])

    with health_probe(server) as health_latencies, ThreadPoolExecutor(max_workers=2 * len(requests)) as pool:
        together = list(pool.map(one, range(2 * len(requests))))

    assert together == alone + alone
    after = http.get("/health").json()["queue"]["batching"]
    windows, batches = after["windows"] - before["windows"], after["batches"] - before["batches"]
    assert windows > batches, "no batch held windows of more than one request"
    assert after["waiting_windows"] == after["running_windows"] == 0
    assert health_latencies, "/health was not answered while the server was busy"
