"""Tenants on the real server with the bundled model, tried as an auditor would: with two API keys,
B learns nothing of A's job by any route or any way (id, formats, events, cancel, delete,
Idempotency-Key replay, the result cache); and two workers with different models on one store
never answer each other's requests from the cache."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.postgres import reset
from tests.support.server import offline_cpu_env, write_tiled_sample
from tests.support.server_fixtures import server_or_fail
from tests.support.waiting import wait_for_job

KEY_A = "auditor-tenant-a-0123456789"
KEY_B = "auditor-tenant-b-9876543210"
FORMATS = ("json", "srt", "vtt", "txt", "tsv")
FINISHED = ("succeeded", "failed", "cancelled")


def _env(root: Path, **extra: str) -> dict[str, str]:
    (root / "uploads").mkdir(parents=True, exist_ok=True)
    return offline_cpu_env(
        root,
        TEMP_DIR=str(root / "uploads"),
        ENABLE_DIARIZATION="false",
        WARMUP="false",
        JOB_CONCURRENCY="1",
        **extra,
    )


def submit(http: httpx.Client, audio: Path, key: str, headers: dict[str, str] | None = None, **form: str):
    with audio.open("rb") as f:
        return http.post(
            "/v1/jobs",
            files={"file": (audio.name, f, "audio/wav")},
            data=form,
            headers={"Authorization": f"Bearer {key}", **(headers or {})},
        )


def probe(http: httpx.Client, job_id: str, key: str) -> list[tuple[int, str]]:
    """What ``key`` gets from every job route about ``job_id``, the id blanked out."""
    auth = {"Authorization": f"Bearer {key}"}
    replies = [http.get(f"/v1/jobs/{job_id}", params={"format": f}, headers=auth) for f in FORMATS]
    replies += [
        http.get(f"/v1/jobs/{job_id}/events", headers=auth),
        http.post(f"/v1/jobs/{job_id}/cancel", headers=auth),
        http.delete(f"/v1/jobs/{job_id}", headers=auth),
    ]
    return [(reply.status_code, reply.text.replace(job_id, "<id>")) for reply in replies]


def as_(http: httpx.Client, key: str) -> httpx.Client:
    http.headers["Authorization"] = f"Bearer {key}"
    return http


def test_another_key_learns_nothing_of_a_job(tmp_path: Path, sample_wav: Path) -> None:
    long_call = write_tiled_sample(tmp_path / "call.wav", 120.0)
    env = _env(tmp_path, API_KEYS=f"alpha:{KEY_A},beta:{KEY_B}")
    with server_or_fail(env, tmp_path / "server.log", timeout_s=600) as server, server.client() as http:
        job = submit(http, long_call, KEY_A, {"Idempotency-Key": "order-42"}, word_timestamps="false").json()
        running = wait_for_job(as_(http, KEY_A), job["id"], lambda j: j["state"] == "running", timeout_s=120)
        never_existed = probe(http, uuid.uuid4().hex, KEY_B)
        assert {status for status, _ in never_existed} == {404}
        assert probe(http, job["id"], KEY_B) == never_existed, "B tells A's running job from a random id"
        done = wait_for_job(as_(http, KEY_A), job["id"], lambda j: j["state"] in FINISHED, timeout_s=600)
        assert done["state"] == "succeeded" and done["attempts"] == running["attempts"] == 1, "B's cancel did nothing"
        assert probe(http, job["id"], KEY_B) == never_existed, "B tells A's finished job from a random id"

        replay = submit(http, long_call, KEY_B, {"Idempotency-Key": "order-42"}, word_timestamps="false")
        assert replay.status_code == 202 and "Idempotent-Replayed" not in replay.headers
        b_job: dict[str, Any] = replay.json()
        assert b_job["id"] != job["id"] and b_job["cache_hit"] is False and b_job["result"] is None
        other = submit(http, sample_wav, KEY_B, {"Idempotency-Key": "order-42"})
        assert other.status_code == 409, "B's own key with other audio: B's own conflict"
        mine_again = submit(http, long_call, KEY_A, {"Idempotency-Key": "order-42"}, word_timestamps="false")
        assert mine_again.status_code == 200 and mine_again.json()["id"] == job["id"]
        a_text = http.get(f"/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {KEY_A}"}).json()
        assert a_text["result"]["text"], "A's job untouched"
        metrics = http.get("/metrics").text
    assert 'tenant="alpha"' in metrics and 'tenant="beta"' in metrics
    assert KEY_A not in metrics and KEY_B not in metrics
    log = (tmp_path / "server.log").read_text()
    assert KEY_A not in log and KEY_B not in log and "by tenant alpha" in log


def test_workers_with_different_models_never_share_cached_results(tmp_path: Path, postgres_url: str) -> None:
    reset(postgres_url)
    clip = write_tiled_sample(tmp_path / "clip.wav", 12.0, offset=5.0)
    shared = {"JOBS_DATABASE_URL": postgres_url}

    def run(http: httpx.Client) -> dict[str, Any]:
        with clip.open("rb") as f:
            job = http.post("/v1/jobs", files={"file": ("clip.wav", f)}, data={"language": "en"}).json()
        return wait_for_job(http, job["id"], lambda j: j["state"] in FINISHED, timeout_s=300)

    base_env = _env(tmp_path / "base", WHISPER_MODEL="bundled-base", **shared)
    with server_or_fail(base_env, tmp_path / "base.log", timeout_s=600) as base, base.client() as http:
        first = run(http)
        assert first["state"] == "succeeded" and first["result"]["model"] == "bundled-base"
        assert run(http)["cache_hit"] is True, "the same worker reuses its own result"
    tiny_env = _env(tmp_path / "tiny", WHISPER_MODEL="bundled-tiny.en", **shared)
    with server_or_fail(tiny_env, tmp_path / "tiny.log", timeout_s=600) as tiny, tiny.client() as http:
        other = run(http)
        assert other["state"] == "succeeded" and other["cache_hit"] is False
        assert other["result"]["model"] == "bundled-tiny.en", "answered with the other model's result"
        again = run(http)
        assert again["cache_hit"] is True and again["result"]["model"] == "bundled-tiny.en"
