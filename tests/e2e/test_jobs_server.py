"""Jobs on the real server with the bundled model: a real result, a crash in the middle of a job
(SIGKILL, then a restart on the same volume), and a scale-out of two workers on a real Postgres
server where the worker running a job is killed and the other one finishes it."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.postgres import reset
from tests.support.server import RunningServer, write_tiled_sample
from tests.support.server_fixtures import server_or_fail
from tests.support.waiting import wait_for_job

FINISHED = ("succeeded", "failed", "cancelled")


def submit(http: httpx.Client, audio: Path, **form: str) -> dict[str, Any]:
    with audio.open("rb") as f:
        reply = http.post("/v1/jobs", files={"file": (audio.name, f, "audio/wav")}, data=form)
    assert reply.status_code == 202, reply.text
    return reply.json()


def finished(job: dict[str, Any]) -> bool:
    return job["state"] in FINISHED


def test_a_job_transcribes_real_speech_with_speakers(http: httpx.Client, sample_wav: Path) -> None:
    job = submit(http, sample_wav)
    events = []
    with http.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    done = events[-1]
    assert done["state"] == "succeeded", done
    assert any(e["progress"]["stage"] for e in events[:-1]) or len(events) == 1
    result = http.get(f"/v1/jobs/{job['id']}").json()["result"]
    assert result["num_speakers"] == 2 and len(result["word_segments"]) > 50
    assert all(w["score"] is not None for w in result["word_segments"])
    vtt = http.get(f"/v1/jobs/{job['id']}", params={"format": "vtt"})
    assert vtt.text.startswith("WEBVTT") and "<v SPEAKER_0" in vtt.text


def _job_env(root: Path, **extra: str) -> dict[str, str]:
    return {
        "MODEL_CACHE_DIR": str(root / "models"),
        "TEMP_DIR": str(root),
        "DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
        "HF_TOKEN": "",
        "ENABLE_DIARIZATION": "false",  # the ASR alone is long enough to be killed in the middle
        "WARMUP": "false",
        "JOB_CONCURRENCY": "1",
        **extra,
    }


def _kill(server: RunningServer) -> None:
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(30)


def test_a_job_survives_a_crash_of_its_server(tmp_path: Path) -> None:
    audio = write_tiled_sample(tmp_path / "call.wav", 150.0)
    env = _job_env(tmp_path, JOBS_DIR=str(tmp_path / "jobs"))
    with server_or_fail(env, tmp_path / "first.log", timeout_s=600) as first, first.client() as http:
        job = submit(http, audio, word_timestamps="false")
        wait_for_job(http, job["id"], lambda j: j["progress"]["stage"] == "asr", timeout_s=120)
        _kill(first)
    with server_or_fail(env, tmp_path / "second.log", timeout_s=600) as second, second.client() as http:
        ready = time.monotonic()
        running = wait_for_job(http, job["id"], lambda j: j["state"] != "queued", timeout_s=60)
        waited = time.monotonic() - ready
        done = wait_for_job(http, job["id"], finished, timeout_s=300)
    assert running["state"] in ("running", "succeeded")
    assert done["state"] == "succeeded" and done["attempts"] == 2, done
    assert done["result"]["duration"] == pytest.approx(150.0, abs=0.1)
    assert waited < 5.0, f"the restarted server took {waited:.1f} s to take the job back"
    print(f"\nrestart: the job ran again {waited:.2f} s after the server was ready")
    assert not list(tmp_path.glob("upload-*")), "temporary files left"


def test_two_workers_on_postgres_share_jobs_and_recover_a_killed_one(tmp_path: Path, postgres_url: str) -> None:
    reset(postgres_url)
    audio = write_tiled_sample(tmp_path / "call.wav", 150.0)
    short = write_tiled_sample(tmp_path / "short.wav", 20.0, offset=3.0)
    env = {"JOBS_DATABASE_URL": postgres_url, "JOB_LEASE_S": "4"}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with (
        server_or_fail(_job_env(tmp_path / "a", **env), tmp_path / "a.log", timeout_s=600) as a,
        server_or_fail(_job_env(tmp_path / "b", **env), tmp_path / "b.log", timeout_s=600) as b,
        a.client() as via_a,
        b.client() as via_b,
    ):
        job = submit(via_a, audio, word_timestamps="false")
        running = wait_for_job(via_b, job["id"], lambda j: j["progress"]["stage"] == "asr", timeout_s=120)
        pids = {a.process.pid: (a, via_b), b.process.pid: (b, via_a)}
        victim, survivor = pids[int(running["worker"].split(":")[1])]
        _kill(victim)
        killed_at = time.monotonic()
        taken = wait_for_job(survivor, job["id"], lambda j: j["attempts"] == 2 or finished(j), timeout_s=60)
        handover = time.monotonic() - killed_at
        done = wait_for_job(survivor, job["id"], finished, timeout_s=300)
        assert done["state"] == "succeeded" and done["attempts"] == 2, done
        assert taken["worker"] != running["worker"]
        assert handover < 4 + 5, f"the job waited {handover:.1f} s for another worker"
        print(f"\nkilled worker: its job ran again on the other {handover:.1f} s later (lease 4 s)")
        # The survivor goes on; the same audio and options again is answered from the shared store.
        other = submit(survivor, short, language="en")
        assert wait_for_job(survivor, other["id"], finished, timeout_s=300)["attempts"] == 1
        again = submit(survivor, short, language="en")
        assert again["state"] == "succeeded" and again["cache_hit"] and again["result"]["text"]
