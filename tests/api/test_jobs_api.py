"""/v1/jobs with the fake pipeline: the states, the cache, idempotency, cancellation, failures,
events, webhooks and ROLE=api. The real server and real engines: tests/e2e/test_jobs_server.py."""

from __future__ import annotations

import json
import time

import pytest

from app.errors import InvalidParameter
from app.jobs.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.api.conftest import FakePipeline, submit, wait_until
from tests.support.waiting import wait_for, wait_for_job
from tests.support.webhook_receiver import webhook_receiver


def test_a_job_runs_and_its_result_comes_in_every_format(jobs_client, sample_bytes, fake_pipeline):
    reply = submit(jobs_client, sample_bytes, diarize="true")
    assert reply.status_code == 202
    job = reply.json()
    assert reply.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] in ("queued", "running") and job["result"] is None
    done = wait_until(jobs_client, job["id"])
    assert done["state"] == "succeeded" and done["attempts"] == 1 and done["error"] is None
    assert done["progress"]["fraction"] == 1.0 and done["progress"]["audio_seconds"] == 30.0
    assert done["result"]["text"] == "Hello there. Hi." and done["result"]["num_speakers"] == 2
    srt = jobs_client.get(f"/v1/jobs/{job['id']}", params={"format": "srt"})
    assert srt.status_code == 200 and srt.text.startswith("1\n00:00:00,500 --> ")
    assert "[SPEAKER_00]" in srt.text
    tsv = jobs_client.get(f"/v1/jobs/{job['id']}", params={"format": "tsv"})
    assert tsv.text.splitlines()[0] == "start\tend\tspeaker\ttext"
    _, options = fake_pipeline.calls[0]
    assert options.diarize is True


def test_the_same_audio_and_options_are_answered_from_the_store(jobs_client, sample_bytes, fake_pipeline):
    first = submit(jobs_client, sample_bytes, language="en").json()
    wait_until(jobs_client, first["id"])
    again = submit(jobs_client, sample_bytes, language="en")
    assert again.status_code == 202
    hit = again.json()
    assert hit["id"] != first["id"] and hit["state"] == "succeeded" and hit["cache_hit"] is True
    assert hit["result"]["text"] == "Hello there. Hi." and hit["progress"]["fraction"] == 1.0
    other_options = submit(jobs_client, sample_bytes, language="de").json()
    assert other_options["cache_hit"] is False
    wait_until(jobs_client, other_options["id"])
    assert len(fake_pipeline.calls) == 2


def test_an_idempotency_key_returns_the_first_job(jobs_client, sample_bytes):
    key = {"Idempotency-Key": "upload-42"}
    first = submit(jobs_client, sample_bytes, headers=key)
    retry = submit(jobs_client, sample_bytes, headers=key)
    assert first.status_code == 202 and retry.status_code == 200
    assert retry.json()["id"] == first.json()["id"] and retry.headers["Idempotent-Replayed"] == "true"
    clash = submit(jobs_client, sample_bytes, headers=key, language="de")
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "conflict"


def test_a_queued_job_can_be_cancelled_once(make_jobs_client, sample_bytes):
    client = make_jobs_client(job_concurrency=0)  # takes jobs, runs none
    job = submit(client, sample_bytes).json()
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 409
    assert client.get(f"/v1/jobs/{job['id']}", params={"format": "srt"}).status_code == 409
    assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "cancelled", "a cancelled job stays readable"


def test_a_deleted_job_is_gone_with_its_transcript_and_audio(jobs_client, sample_bytes, tmp_path):
    job = submit(jobs_client, sample_bytes).json()
    assert wait_until(jobs_client, job["id"])["state"] == "succeeded"
    audio = jobs_client.app.state.jobs.service.audio
    assert job["id"] in audio.ids()
    assert jobs_client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert jobs_client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert jobs_client.delete(f"/v1/jobs/{job['id']}").status_code == 404
    assert job["id"] not in audio.ids()
    again = submit(jobs_client, sample_bytes).json()
    assert again["cache_hit"] is False, "a deleted transcript is not served from the cache either"


def test_deleting_a_running_job_stops_it(jobs_client, sample_bytes, fake_pipeline):
    fake_pipeline.release.clear()
    job = submit(jobs_client, sample_bytes).json()
    assert fake_pipeline.started.wait(10)
    assert jobs_client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    metrics = lambda: jobs_client.get("/metrics").text  # noqa: E731
    wait_for(lambda: "transcription_jobs_running_here 0.0" in metrics(), 10, "the job's worker free")
    assert jobs_client.get(f"/v1/jobs/{job['id']}").status_code == 404


def test_a_running_job_is_stopped_by_its_cancellation(jobs_client, sample_bytes, fake_pipeline):
    fake_pipeline.release.clear()  # the fake run waits, checking its cancel token
    job = submit(jobs_client, sample_bytes).json()
    assert fake_pipeline.started.wait(10)
    assert jobs_client.post(f"/v1/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
    metrics = lambda: jobs_client.get("/metrics").text  # noqa: E731
    wait_for(lambda: "transcription_jobs_running_here 0.0" in metrics(), 10, "the job's worker free")
    final = jobs_client.get(f"/v1/jobs/{job['id']}").json()
    assert final["state"] == "cancelled" and final["result"] is None


@pytest.mark.parametrize(("device", "at_once"), [("cuda", 3), ("cpu", 2)])
def test_a_backlog_runs_a_batch_of_jobs_at_once_on_a_gpu(
    make_client, ready_state, fake_pipeline, sample_bytes, device, at_once
):
    """JOB_CONCURRENCY's default follows the device: BATCH_SIZE jobs at once on a GPU (their
    windows fill the batches), 2 on the CPU."""
    state = ready_state(batch_size=3, job_lease_s=2.0)
    state.device = device
    fake_pipeline.release.clear()
    with make_client(state) as client:
        wait_for(lambda: client.app.state.jobs.service is not None, 20, "the job store open")
        jobs = [submit(client, sample_bytes).json()["id"] for _ in range(5)]
        running = lambda: client.get("/metrics").text  # noqa: E731
        wait_for(lambda: f"transcription_jobs_running_here {at_once:.1f}" in running(), 10, f"{at_once} jobs running")
        time.sleep(1.5)  # three idle polls: no further job is claimed meanwhile
        assert f"transcription_jobs_running_here {at_once:.1f}" in running()
        fake_pipeline.release.set()
        assert all(wait_until(client, job)["state"] == "succeeded" for job in jobs)


def test_a_request_the_models_refuse_fails_at_once(jobs_client, sample_bytes, fake_pipeline):
    fake_pipeline.fail_with = InvalidParameter("The loaded model cannot do that.")
    job = submit(jobs_client, sample_bytes).json()
    failed = wait_until(jobs_client, job["id"])
    assert failed["state"] == "failed" and failed["attempts"] == 1
    assert failed["error"] == "The loaded model cannot do that."


def test_an_internal_error_is_retried_then_reported(make_jobs_client, sample_bytes, fake_pipeline):
    client = make_jobs_client(job_max_attempts=2)
    fake_pipeline.fail_with = RuntimeError("CUDA error: an illegal memory access")
    job = submit(client, sample_bytes).json()
    failed = wait_until(client, job["id"])
    assert failed["state"] == "failed" and failed["attempts"] == 2
    assert "illegal memory access" in failed["error"]
    assert len(fake_pipeline.calls) == 2


@pytest.mark.parametrize(
    ("form", "content", "status", "code"),
    [
        ({}, b"this is not audio at all", 400, "unsupported_media"),
        ({}, b"", 400, "empty_file"),
        ({"language": "xx"}, None, 422, "invalid_parameter"),
        ({"num_speakers": "2", "diarize": "false"}, None, 422, "invalid_parameter"),
        ({"callback_url": "https://hooks.example.com/x"}, None, 422, "invalid_parameter"),
    ],
)
def test_bad_submissions_are_refused_and_nothing_is_stored(jobs_client, sample_bytes, form, content, status, code):
    reply = submit(jobs_client, sample_bytes if content is None else content, **form)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code
    assert 'transcription_jobs{state="queued"} 0.0' in jobs_client.get("/metrics").text


def test_callbacks_go_only_to_allowed_hosts(make_jobs_client, sample_bytes):
    public = "93.184.216.34"  # a global address, written as one: nothing to resolve
    client = make_jobs_client(webhook_secret="k" * 32, webhook_allowed_hosts=[public, "hooks.example.com"])
    refused = submit(client, sample_bytes, callback_url="http://169.254.169.254/latest/meta-data")
    assert refused.status_code == 422 and "WEBHOOK_ALLOWED_HOSTS" in refused.json()["error"]["message"]
    unresolvable = submit(client, sample_bytes, callback_url="https://hooks.example.com/done")  # no DNS here
    assert unresolvable.status_code == 422 and "does not resolve" in unresolvable.json()["error"]["message"]
    accepted = submit(client, sample_bytes, callback_url=f"https://{public}/done")
    assert accepted.status_code == 202 and accepted.json()["webhook"]["state"] is None


@pytest.mark.parametrize("host", ["localhost", "2130706433", "127.1", "0x7f.1", "[::1]", "[::ffff:127.0.0.1]"])
def test_callbacks_to_loopback_in_any_spelling_are_refused_at_submission(make_jobs_client, sample_bytes, host):
    bare = host.strip("[]")
    client = make_jobs_client(webhook_secret="k" * 32, webhook_allowed_hosts=[bare])
    refused = submit(client, sample_bytes, callback_url=f"http://{host}:8080/hook")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["param"] is None or "loopback" in refused.json()["error"]["message"]
    assert "loopback, private" in refused.json()["error"]["message"]
    assert 'transcription_jobs{state="queued"} 0.0' in client.get("/metrics").text


def test_a_full_queue_answers_503(make_jobs_client, sample_bytes):
    client = make_jobs_client(job_concurrency=0, max_queued_jobs=1)
    assert submit(client, sample_bytes).status_code == 202
    full = submit(client, sample_bytes + b"\0\0")
    assert full.status_code == 503 and "Retry-After" in full.headers


def test_unknown_jobs_are_404(jobs_client):
    for reply in (
        jobs_client.get("/v1/jobs/nope"),
        jobs_client.delete("/v1/jobs/nope"),
        jobs_client.post("/v1/jobs/nope/cancel"),
    ):
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "job_not_found"
    assert jobs_client.get("/v1/jobs/" + "x" * 300).status_code == 404


def test_events_stream_progress_then_the_end(jobs_client, sample_bytes):
    job = submit(jobs_client, sample_bytes).json()
    events = []
    with jobs_client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    assert events[-1][0] == "end" and events[-1][1]["state"] == "succeeded"
    assert all(kind == "progress" for kind, _ in events[:-1])


def test_the_api_role_takes_jobs_without_models(make_client, ready_state, sample_bytes):
    state = ready_state(role="api")
    state.phase = state.phase.LOADING  # as create_app finds it; the lifespan marks it ready
    client = make_client(state)
    client.app.dependency_overrides.clear()  # the real dependency: no pipeline in this role
    with client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["stages"]["asr"]["enabled"] is False
        sync = client.post("/transcribe", files={"file": ("a.wav", sample_bytes, "audio/wav")})
        assert sync.status_code == 503 and "ROLE=api" in sync.json()["error"]["message"]
        assert sync.headers["retry-after"], "every 503 says when to come back"
        wait_for(lambda: client.get("/v1/jobs/none").status_code == 404, 20, "the job store open")
        job = submit(client, sample_bytes).json()
        threads = [thread.name for thread in client.app.state.jobs.runner._threads]
        assert threads == ["jobs-housekeeping"], "no job worker runs in the api role"
        assert client.get(f"/v1/jobs/{job['id']}").json()["state"] == "queued"


def test_the_end_of_a_job_is_announced_signed(make_jobs_client, sample_bytes):
    secret = "webhook-secret-of-32-characters!"
    client = make_jobs_client(webhook_secret=secret, webhook_allowed_hosts=["127.0.0.1"], webhook_allow_private=True)
    with webhook_receiver() as receiver:
        url = f"http://127.0.0.1:{receiver.port}/done"
        job = submit(client, sample_bytes, callback_url=url).json()
        wait_for_job(client, job["id"], lambda j: j["webhook"]["state"] == "delivered", timeout_s=20)
    headers, body = receiver.received[0]
    assert verify(secret.encode(), body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER])
    summary = json.loads(body)
    assert summary["id"] == job["id"] and summary["type"] == "job.succeeded" and "result" not in summary


def test_queued_jobs_survive_a_restart(make_jobs_client, sample_bytes, fake_pipeline: FakePipeline, tmp_path):
    jobs_dir = tmp_path / "kept-jobs"
    first = make_jobs_client(job_concurrency=0, jobs_dir=jobs_dir)
    job = submit(first, sample_bytes).json()
    first.__exit__(None, None, None)
    second = make_jobs_client(jobs_dir=jobs_dir)
    assert wait_until(second, job["id"])["state"] == "succeeded"


def test_a_job_queued_by_the_first_release_runs_after_the_upgrade(
    make_jobs_client, sample_bytes, fake_pipeline, tmp_path
):
    """The previous release's row (its schema, its stored form) is run by this one, as it was asked."""
    import sqlite3

    from tests.unit.test_job_store_upgrade import write_schema_1

    jobs_dir = tmp_path / "old-jobs"
    (jobs_dir / "audio").mkdir(parents=True)
    with sqlite3.connect(jobs_dir / "jobs.db") as db:
        write_schema_1(lambda sql, args: db.execute(sql, args) and None, "?", "REAL")
    for job_id in ("old-queued", "old-other"):
        (jobs_dir / "audio" / f"{job_id}.audio").write_bytes(sample_bytes)
    client = make_jobs_client(jobs_dir=jobs_dir)
    done = wait_until(client, "old-queued")
    assert done["state"] == "succeeded", done
    assert done["result"]["num_speakers"] == 2 and done["result"]["language"] == "de"
    options = [options for _, options in fake_pipeline.calls]
    assert all(o.language == "de" and o.hints.num_speakers == 2 and o.batch_size == 8 for o in options)
    assert all(o.initial_prompt == "Kubernetes" for o in options)
