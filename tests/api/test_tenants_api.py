"""Tenants: with two API keys, one tenant's jobs, Idempotency-Keys and cached results are invisible
to the other — every job route answers exactly as for an id that never existed."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.api.conftest import submit, wait_until

KEY_A = "tenant-a-key-0123456789"
KEY_B = "tenant-b-key-9876543210"
FORMATS = ("json", "srt", "vtt", "txt", "tsv")


def as_(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def probe(client: TestClient, job_id: str, key: str) -> list[tuple[int, str]]:
    """Every job route's answer to ``key`` about ``job_id``, with the id itself blanked out."""
    headers = as_(key)
    replies = [client.get(f"/v1/jobs/{job_id}", params={"format": f}, headers=headers) for f in FORMATS]
    replies.append(client.get(f"/v1/jobs/{job_id}/events", headers=headers))
    replies.append(client.post(f"/v1/jobs/{job_id}/cancel", headers=headers))
    replies.append(client.delete(f"/v1/jobs/{job_id}", headers=headers))
    return [(reply.status_code, reply.text.replace(job_id, "<id>")) for reply in replies]


@pytest.fixture
def two_tenants(make_jobs_client) -> TestClient:
    return make_jobs_client(api_keys=f"alpha:{KEY_A},{KEY_B}")


def test_another_tenants_job_reads_as_one_that_never_existed(two_tenants, sample_bytes, fake_pipeline):
    fake_pipeline.release.clear()  # A's job stays running while B tries it
    job = submit(two_tenants, sample_bytes, headers=as_(KEY_A)).json()
    fake_pipeline.started.wait(10)
    never_existed = probe(two_tenants, uuid.uuid4().hex, KEY_B)
    assert all(status == 404 for status, _ in never_existed)
    assert probe(two_tenants, job["id"], KEY_B) == never_existed
    mine = two_tenants.get(f"/v1/jobs/{job['id']}", headers=as_(KEY_A)).json()
    assert mine["state"] == "running", "B's cancel and DELETE did not touch A's job"
    fake_pipeline.release.set()
    done = _wait_as(two_tenants, job["id"], KEY_A)
    assert done["state"] == "succeeded"
    assert probe(two_tenants, job["id"], KEY_B) == never_existed, "a finished job tells B nothing either (no 409)"


def test_idempotency_keys_are_per_tenant(two_tenants, sample_bytes):
    first = submit(two_tenants, sample_bytes, headers={**as_(KEY_A), "Idempotency-Key": "order-42"})
    assert first.status_code == 202
    a_job = first.json()
    replay = submit(two_tenants, sample_bytes, headers={**as_(KEY_B), "Idempotency-Key": "order-42"})
    assert replay.status_code == 202 and "Idempotent-Replayed" not in replay.headers
    assert replay.json()["id"] != a_job["id"], "B got A's job by its Idempotency-Key"
    other_audio = submit(two_tenants, sample_bytes + b"\0\0", headers={**as_(KEY_B), "Idempotency-Key": "order-42"})
    assert other_audio.status_code == 409, "B's own key, with other content: B's own conflict"
    fresh = submit(two_tenants, sample_bytes + b"\0\0\0\0", headers={**as_(KEY_B), "Idempotency-Key": "order-7"})
    assert fresh.status_code == 202, "a key only A used is no conflict for B"
    again = submit(two_tenants, sample_bytes, headers={**as_(KEY_A), "Idempotency-Key": "order-42"})
    assert again.status_code == 200 and again.json()["id"] == a_job["id"]


def test_the_result_cache_is_per_tenant(two_tenants, sample_bytes, fake_pipeline):
    a_job = submit(two_tenants, sample_bytes, headers=as_(KEY_A)).json()
    assert _wait_as(two_tenants, a_job["id"], KEY_A)["state"] == "succeeded"
    b_job = submit(two_tenants, sample_bytes, headers=as_(KEY_B)).json()
    assert b_job["cache_hit"] is False and b_job["state"] in ("queued", "running")
    done = _wait_as(two_tenants, b_job["id"], KEY_B)
    assert done["state"] == "succeeded" and done["cache_hit"] is False
    assert len(fake_pipeline.calls) == 2, "B's audio was transcribed for B"
    a_again = submit(two_tenants, sample_bytes, headers=as_(KEY_A)).json()
    assert a_again["cache_hit"] is True, "a tenant still reuses its own results"


def test_a_shared_cache_is_the_operators_choice(make_jobs_client, sample_bytes, fake_pipeline):
    client = make_jobs_client(api_keys=f"{KEY_A},{KEY_B}", jobs_shared_cache=True)
    a_job = submit(client, sample_bytes, headers=as_(KEY_A)).json()
    _wait_as(client, a_job["id"], KEY_A)
    b_job = submit(client, sample_bytes, headers=as_(KEY_B)).json()
    assert b_job["cache_hit"] is True and len(fake_pipeline.calls) == 1
    assert client.get(f"/v1/jobs/{a_job['id']}", headers=as_(KEY_B)).status_code == 404, "jobs stay private"


def test_keys_sharing_a_name_are_one_tenant_and_metrics_name_it(make_jobs_client, sample_bytes):
    old, new = "ops-key-2026-11-aaaaaaaa", "ops-key-2026-12-bbbbbbbb"
    client = make_jobs_client(api_keys=f"ops:{old},ops:{new},{KEY_B}")
    job = submit(client, sample_bytes, headers=as_(old)).json()
    assert client.get(f"/v1/jobs/{job['id']}", headers=as_(new)).status_code == 200, "a rotated key keeps its jobs"
    assert client.get(f"/v1/jobs/{job['id']}", headers=as_(KEY_B)).status_code == 404
    metrics = client.get("/metrics").text
    assert 'transcription_tenant_http_requests_total{route="/v1/jobs/{job_id}",status="200",tenant="ops"}' in metrics
    assert 'tenant="key-3"' in metrics
    for key in (old, new, KEY_B):
        assert key not in metrics


def test_without_keys_everyone_is_one_tenant(jobs_client, sample_bytes):
    job = submit(jobs_client, sample_bytes).json()
    assert jobs_client.get(f"/v1/jobs/{job['id']}").status_code == 200


def test_a_key_file_names_its_tenants(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"# tenants\nalpha:{KEY_A}\n{KEY_B}\n")
    entries = Settings(api_keys=str(keys), model_cache_dir=tmp_path).api_key_entries()
    assert [(e.name, e.named) for e in entries] == [("alpha", True), ("key-2", False)]
    assert KEY_A not in repr(entries)


def _wait_as(client: TestClient, job_id: str, key: str) -> dict:
    client.headers.update(as_(key))
    try:
        return wait_until(client, job_id)
    finally:
        del client.headers["Authorization"]
