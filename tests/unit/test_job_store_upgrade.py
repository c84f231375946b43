"""A store laid out by the first release (schema 1) is upgraded in place and its rows still run:
on both engines, with the first release's own statements writing the old rows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.engine.options import SpeakerHints
from app.jobs.databases import PostgresJobStore, SqliteJobStore
from app.jobs.options import load_options
from app.jobs.records import JobState
from app.jobs.store import SCHEMA_VERSION, JobStore, StoreFromTheFuture
from tests.support.postgres import reset

# The first release's layout (app/jobs/store.py before schema versions), as it created it.
SCHEMA_1 = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, created_at {real} NOT NULL, updated_at {real} NOT NULL,
    started_at {real}, finished_at {real}, params TEXT NOT NULL, request_key TEXT NOT NULL,
    audio_sha256 TEXT NOT NULL, audio_bytes BIGINT NOT NULL, filename TEXT, idempotency_key TEXT UNIQUE,
    callback_url TEXT, attempts INTEGER NOT NULL DEFAULT 0, lease_owner TEXT, lease_expires {real},
    progress TEXT, error TEXT, result TEXT, cache_hit INTEGER NOT NULL DEFAULT 0, webhook_state TEXT,
    webhook_attempts INTEGER NOT NULL DEFAULT 0, webhook_next_at {real}, webhook_error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, created_at);
CREATE INDEX IF NOT EXISTS jobs_request ON jobs (request_key, state);
CREATE INDEX IF NOT EXISTS jobs_webhooks ON jobs (webhook_state, webhook_next_at)
"""

# What the first release's /v1/jobs stored: the validated form fields, no version.
FORM_1 = {
    "language": "de",
    "task": "transcribe",
    "diarize": True,
    "num_speakers": 2,
    "min_speakers": None,
    "max_speakers": None,
    "initial_prompt": "Kubernetes",
    "batch_size": 8,
    "word_timestamps": True,
}
INSERT_1 = """INSERT INTO jobs (id, state, created_at, updated_at, params, request_key, audio_sha256, audio_bytes,
    filename, idempotency_key, progress) VALUES ({values})"""


def write_schema_1(execute: Callable[[str, tuple[Any, ...]], None], placeholder: str, real: str) -> None:
    for statement in SCHEMA_1.format(real=real).split(";"):
        execute(statement, ())
    values = ", ".join([placeholder] * 11)
    for job_id, key in (("old-queued", "order-42"), ("old-other", None)):
        row = (job_id, "queued", 1.0, 1.0, json.dumps(FORM_1), "k1", "a" * 64, 10, "call.wav", key, "{}")
        execute(INSERT_1.format(values=values), row)


@pytest.fixture(params=["sqlite", "postgres"])
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], JobStore]]:
    """A store of schema 1 holding two queued jobs; the factory opens it with today's code."""
    opened: list[JobStore] = []
    if request.param == "postgres":
        import psycopg

        url = request.getfixturevalue("postgres_url")
        reset(url)
        with psycopg.connect(url, autocommit=True) as db:
            write_schema_1(lambda sql, args: db.execute(sql, args) and None, "%s", "DOUBLE PRECISION")

        def factory() -> JobStore:
            opened.append(PostgresJobStore(url))
            return opened[-1]
    else:
        path = tmp_path / "jobs.db"
        with sqlite3.connect(path) as db:
            write_schema_1(lambda sql, args: db.execute(sql, args) and None, "?", "REAL")

        def factory() -> JobStore:
            opened.append(SqliteJobStore(path))
            return opened[-1]

    yield factory
    for store in opened:
        store.close()


def test_an_old_store_is_upgraded_and_its_rows_are_kept(old_store) -> None:
    store = old_store()
    job = store.get("old-queued")
    assert job is not None and job.state is JobState.QUEUED and job.tenant == "" and job.result_key is None
    assert job.idempotency_key == "order-42" and job.filename == "call.wav"
    options = load_options(job.params)
    assert options.language == "de" and options.diarize is True and options.batch_size == 8
    assert options.hints == SpeakerHints(num_speakers=2) and options.initial_prompt == "Kubernetes"
    claimed = store.claim("worker", 30)
    assert claimed is not None and claimed.id in ("old-queued", "old-other")


def test_after_the_upgrade_idempotency_keys_are_per_tenant(old_store) -> None:
    store = old_store()
    assert store.by_idempotency_key("", "order-42") is not None, "the old rows are the keyless tenant's"
    assert store.by_idempotency_key("someone", "order-42") is None
    from tests.unit.test_job_store import new_job

    store.create(new_job(idempotency_key="order-42", tenant="someone"))  # the old column-wide UNIQUE is gone
    assert store.by_idempotency_key("someone", "order-42") is not None


def test_the_upgrade_runs_once_and_every_process_shares_the_salt(old_store) -> None:
    first, second = old_store(), old_store()
    assert first.tenant_salt and first.tenant_salt == second.tenant_salt
    assert {first.get("old-queued").id, second.get("old-other").id} == {"old-queued", "old-other"}  # type: ignore[union-attr]


def test_a_store_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    SqliteJobStore(tmp_path / "jobs.db").close()
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        db.execute("UPDATE job_store_meta SET value = ? WHERE name = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreFromTheFuture, match="newer release"):
        SqliteJobStore(tmp_path / "jobs.db")
