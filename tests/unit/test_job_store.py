"""The job store's rules, on both engines: SQLite (embedded) and a real Postgres server."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.jobs.audio_store import AudioMissing, AudioStore, clear_stale_scratch, open_audio_store, scratch_dir
from app.jobs.databases import PostgresJobStore, SqliteJobStore
from app.jobs.records import JobState, NewJob
from app.jobs.store import DuplicateIdempotencyKey, JobStore
from tests.support.postgres import reset

StoreFactory = Callable[[], JobStore]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens connections to one fresh store (several, for the tests of concurrent workers)."""
    opened: list[JobStore] = []
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        reset(url)

        def factory() -> JobStore:
            opened.append(PostgresJobStore(url))
            return opened[-1]
    else:

        def factory() -> JobStore:
            opened.append(SqliteJobStore(tmp_path / "jobs.db"))
            return opened[-1]

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: StoreFactory) -> JobStore:
    return open_store()


def new_job(
    key: str = "k", *, idempotency_key: str | None = None, callback_url: str | None = None, tenant: str = ""
) -> NewJob:
    return NewJob(
        id=uuid.uuid4().hex,
        tenant=tenant,
        params={"version": 2, "options": {"language": "en"}},
        request_key=key,
        audio_sha256="a" * 64,
        audio_bytes=10,
        filename="call.mp3",
        idempotency_key=idempotency_key,
        callback_url=callback_url,
    )


def test_a_job_goes_from_queued_to_succeeded(store: JobStore) -> None:
    job = store.create(new_job())
    assert job.state is JobState.QUEUED and job.attempts == 0 and job.params["options"] == {"language": "en"}
    claimed = store.claim("worker-a", lease_s=30)
    assert claimed is not None and claimed.id == job.id
    assert claimed.state is JobState.RUNNING and claimed.attempts == 1 and claimed.lease_owner == "worker-a"
    assert store.claim("worker-b", lease_s=30) is None
    assert store.heartbeat(job.id, "worker-a", 30, {"stage": "asr", "fraction": 0.5})
    assert store.get(job.id).progress == {"stage": "asr", "fraction": 0.5}  # type: ignore[union-attr]
    assert not store.succeed(job.id, "worker-b", "{}", {}), "only the lease holder records the outcome"
    assert store.succeed(job.id, "worker-a", '{"text": 1}', {"stage": "done"})
    done = store.get(job.id)
    assert done is not None and done.state is JobState.SUCCEEDED and done.result == '{"text": 1}'
    assert done.finished_at is not None and done.finished_at >= done.created_at
    assert store.counts()[JobState.SUCCEEDED] == 1 and store.count(JobState.SUCCEEDED) == 1
    assert store.count(JobState.QUEUED) == 0


def test_jobs_are_claimed_oldest_first(store: JobStore) -> None:
    first = store.create(new_job())
    time.sleep(0.01)  # SQLite's clock counts milliseconds; equal times are taken in id order
    second = store.create(new_job())
    assert store.claim("w", 30).id == first.id  # type: ignore[union-attr]
    assert store.claim("w", 30).id == second.id  # type: ignore[union-attr]


def test_concurrent_workers_never_take_the_same_job(open_store: StoreFactory) -> None:
    setup = open_store()
    ids = {setup.create(new_job()).id for _ in range(60)}
    workers = [open_store() for _ in range(6)]  # one connection each, as separate processes have
    taken: list[str] = []
    lock = threading.Lock()

    def work(store: JobStore, name: str) -> None:
        while (job := store.claim(name, 30)) is not None:
            with lock:
                taken.append(job.id)

    threads = [threading.Thread(target=work, args=(s, f"w{n}")) for n, s in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert Counter(taken).most_common(1)[0][1] == 1, "a job was claimed twice"
    assert set(taken) == ids


def test_a_cancelled_job_stops_its_worker_at_the_next_heartbeat(store: JobStore) -> None:
    job = store.create(new_job(tenant="a"))
    store.claim("w", 30)
    assert store.cancel(job.id, "b") is None, "another tenant cannot cancel it"
    assert store.get(job.id).state is JobState.RUNNING  # type: ignore[union-attr]
    cancelled = store.cancel(job.id, "a")
    assert cancelled is not None and cancelled.state is JobState.CANCELLED
    assert not store.heartbeat(job.id, "w", 30, {})
    assert not store.succeed(job.id, "w", "{}", {})
    assert store.cancel(job.id, "a") is None, "a finished job cannot be cancelled again"


def test_a_job_is_read_only_by_its_tenant(store: JobStore) -> None:
    job = store.create(new_job(tenant="a"))
    assert store.owned(job.id, "a").id == job.id  # type: ignore[union-attr]
    assert store.owned(job.id, "b") is None and store.owned(job.id, "") is None


def test_an_expired_lease_requeues_the_job_until_its_attempts_are_used(store: JobStore) -> None:
    job = store.create(new_job())
    for attempt in (1, 2):
        claimed = store.claim(f"dead-{attempt}", lease_s=0.05)
        assert claimed is not None and claimed.attempts == attempt
        time.sleep(0.1)
        assert store.recover(max_attempts=2) == 1
    failed = store.get(job.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error is not None and "stopped, 2 time(s)" in failed.error
    assert not store.heartbeat(job.id, "dead-2", 30, {}), "the dead worker lost the job"


def test_a_live_lease_is_left_alone(store: JobStore) -> None:
    store.create(new_job())
    store.claim("alive", lease_s=30)
    assert store.recover(max_attempts=3) == 0
    assert store.counts()[JobState.RUNNING] == 1


def test_the_embedded_restart_takes_back_everything_running(store: JobStore) -> None:
    job = store.create(new_job())
    store.claim("before-restart", lease_s=30)
    assert store.recover(max_attempts=3, everything_running=True) == 1
    assert store.get(job.id).state is JobState.QUEUED  # type: ignore[union-attr]


def test_release_refunds_the_attempt(store: JobStore) -> None:
    job = store.create(new_job())
    store.claim("w", 30)
    assert store.release(job.id, "w", "shutting down")
    back = store.get(job.id)
    assert back is not None and back.state is JobState.QUEUED and back.attempts == 0


def test_fail_retries_while_attempts_last(store: JobStore) -> None:
    job = store.create(new_job())
    store.claim("w", 30)
    assert store.fail(job.id, "w", "flaky", retry=True, max_attempts=2) is JobState.QUEUED
    store.claim("w", 30)
    assert store.fail(job.id, "w", "flaky again", retry=True, max_attempts=2) is JobState.FAILED
    assert store.get(job.id).error == "flaky again"  # type: ignore[union-attr]
    other = store.create(new_job())
    store.claim("w", 30)
    assert store.fail(other.id, "w", "not audio", retry=False, max_attempts=5) is JobState.FAILED


def test_an_idempotency_key_is_held_by_one_job_of_each_tenant(store: JobStore) -> None:
    first = store.create(new_job(idempotency_key="retry-1", tenant="a"))
    with pytest.raises(DuplicateIdempotencyKey):
        store.create(new_job(idempotency_key="retry-1", tenant="a"))
    assert store.by_idempotency_key("a", "retry-1").id == first.id  # type: ignore[union-attr]
    assert store.by_idempotency_key("b", "retry-1") is None
    other_tenants = store.create(new_job(idempotency_key="retry-1", tenant="b"))
    assert store.by_idempotency_key("b", "retry-1").id == other_tenants.id  # type: ignore[union-attr]


def test_a_cached_result_comes_from_a_succeeded_job_with_the_same_result_key(store: JobStore) -> None:
    job = store.create(new_job())
    assert store.cached("same") is None
    store.claim("w", 30)
    store.succeed(job.id, "w", '{"r": 1}', {}, result_key="same")
    assert store.cached("same").id == job.id  # type: ignore[union-attr]
    assert store.cached("other") is None
    hit = store.create(new_job(), result='{"r": 1}', progress={"stage": "done"}, result_key="same")
    assert hit.state is JobState.SUCCEEDED and hit.cache_hit and hit.finished_at is not None


def test_retention_deletes_finished_jobs_only(store: JobStore) -> None:
    finished = store.claim("w", 30) if store.create(new_job()) else None
    assert finished is not None
    queued = store.create(new_job())
    store.succeed(finished.id, "w", "{}", {})
    assert store.expire(older_than_s=3600) == []
    time.sleep(0.05)
    assert store.expire(older_than_s=0.01) == [finished.id]
    assert store.get(finished.id) is None and store.get(queued.id) is not None


def test_a_webhook_is_due_once_the_job_ends_and_is_retried(store: JobStore) -> None:
    job = store.create(new_job(callback_url="https://hooks.example.com/x"))
    assert store.claim_webhook(lease_s=30) is None, "nothing to announce while queued"
    store.claim("w", 30)
    store.succeed(job.id, "w", "{}", {})
    due = store.claim_webhook(lease_s=30)
    assert due is not None and due.id == job.id and due.webhook_attempts == 1
    assert store.claim_webhook(lease_s=30) is None, "held by its sender"
    store.webhook_done(job.id, delivered=False, error="503", retry_in_s=0.0)
    again = store.claim_webhook(lease_s=30)
    assert again is not None and again.webhook_attempts == 2
    store.webhook_done(job.id, delivered=True, error=None, retry_in_s=None)
    assert store.get(job.id).webhook_state == "delivered"  # type: ignore[union-attr]
    assert store.claim_webhook(lease_s=30) is None


def test_a_corrupt_row_reads_as_a_failed_job(store: JobStore) -> None:
    job = store.create(new_job())
    store._run("UPDATE jobs SET params = :bad WHERE id = :id", bad="{not json", id=job.id)
    read = store.get(job.id)
    assert read is not None and read.state is JobState.FAILED and "corrupt" in (read.error or "")


@pytest.fixture
def audio_store(store: JobStore, tmp_path: Path) -> AudioStore:
    return open_audio_store(store, tmp_path / "audio")


def test_uploads_come_back_byte_for_byte_and_go(audio_store: AudioStore, tmp_path: Path) -> None:
    upload = tmp_path / "upload.bin"
    payload = bytes(range(256)) * (9 * 1024 * 1024 // 256 + 7)  # spans several chunks
    upload.write_bytes(payload)
    audio_store.put("job1", upload)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with audio_store.fetched("job1", scratch) as path:
        assert path.read_bytes() == payload
    assert list(scratch.iterdir()) == [], "no temporary copy left behind"
    audio_store.delete("job1")
    with pytest.raises(AudioMissing), audio_store.fetched("job1", scratch):
        pass
    assert list(scratch.iterdir()) == []


def test_scratch_folders_of_dead_processes_on_this_host_are_removed(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / f"job-audio-{host}-{dead.pid}").mkdir()
    (tmp_path / f"job-audio-{host}-{dead.pid}" / "job-x.bin").write_bytes(b"left by a crash")
    alive = tmp_path / f"job-audio-{host}-1"
    alive.mkdir()
    other_host = tmp_path / "job-audio-elsewhere-123"
    other_host.mkdir()
    clear_stale_scratch(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other_host.name])
    assert scratch_dir(tmp_path).name == f"job-audio-{host}-{os.getpid()}"
    assert not scratch_dir(tmp_path).exists(), "made only when a copy is"
