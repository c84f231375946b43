"""The job queue and result store: one set of SQL statements over SQLite or Postgres
(the two databases' own parts, connections and dialects, are ``app/jobs/databases.py``).

SQLite (a file on the model-cache volume) is the embedded default: one process, no server.
Postgres is the shared engine for scale-out: API processes and GPU workers on many machines
claim from one table with ``SELECT … FOR UPDATE SKIP LOCKED``, so two workers never take the
same job, and a worker that dies stops renewing its lease and its job goes back to the queue.
Every statement is a transaction of its own, and times come from the database's clock, so
machines whose clocks disagree still agree on leases.
"""

from __future__ import annotations

import json
import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from app.jobs.records import JobRecord, JobState, NewJob

logger = logging.getLogger(__name__)

# The store's layout, recorded in job_store_meta. 1: the first release (no table of its own
# for the version; one global Idempotency-Key namespace). 2: jobs belong to a tenant, keys and
# cached results are scoped by it, params hold versioned options (app/jobs/options.py).
SCHEMA_VERSION = 2

JOBS_TABLE = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    created_at {real} NOT NULL,
    updated_at {real} NOT NULL,
    started_at {real},
    finished_at {real},
    params TEXT NOT NULL,
    request_key TEXT NOT NULL,
    result_key TEXT,
    audio_sha256 TEXT NOT NULL,
    audio_bytes BIGINT NOT NULL,
    filename TEXT,
    idempotency_key TEXT,
    callback_url TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires {real},
    progress TEXT,
    error TEXT,
    result TEXT,
    cache_hit INTEGER NOT NULL DEFAULT 0,
    webhook_state TEXT,
    webhook_attempts INTEGER NOT NULL DEFAULT 0,
    webhook_next_at {real},
    webhook_error TEXT
)"""

_SCHEMA = (
    JOBS_TABLE,
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency ON jobs (tenant, idempotency_key)",
    "CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, created_at)",
    "CREATE INDEX IF NOT EXISTS jobs_results ON jobs (result_key, state)",
    "CREATE INDEX IF NOT EXISTS jobs_webhooks ON jobs (webhook_state, webhook_next_at)",
)

_META_TABLE = "CREATE TABLE IF NOT EXISTS job_store_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"

# Version 1's columns, all kept by version 2 (which adds tenant and result_key).
V1_COLUMNS = (
    "id, state, created_at, updated_at, started_at, finished_at, params, request_key, audio_sha256, audio_bytes, "
    "filename, idempotency_key, callback_url, attempts, lease_owner, lease_expires, progress, error, result, "
    "cache_hit, webhook_state, webhook_attempts, webhook_next_at, webhook_error"
)

_FINISHED = "('succeeded', 'failed', 'cancelled')"


class DuplicateIdempotencyKey(Exception):
    """Another job of the same tenant already holds this Idempotency-Key."""


class StoreFromTheFuture(RuntimeError):
    """The store was laid out by a newer version of the service than this one."""


class JobStore(ABC):
    """The statements; a subclass brings the connection and the dialect's few differences."""

    real_type = "REAL"
    skip_locked = ""  # row locks for claims; SQLite serialises writers instead
    now: str  # the database's clock, in seconds since the epoch
    embedded = False  # one process owns the store: it may take back running jobs at start-up
    table_exists: str  # a statement whose one row's ``found`` is true when table :name exists
    upgrade_from_v1: tuple[str, ...]  # version 1's jobs table into version 2's, before _SCHEMA runs
    tenant_salt = ""  # the key of tenant ids (app/jobs/keys.py), made once per store

    # -- the connection --------------------------------------------------------------------

    @abstractmethod
    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run one statement in its own transaction; the rows it returns."""

    @abstractmethod
    def _exclusive(self) -> AbstractContextManager[Callable[[str, dict[str, Any]], list[dict[str, Any]]]]:
        """One transaction that no other process of the store runs beside (for migrations)."""

    @abstractmethod
    def _is_duplicate(self, error: Exception) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...

    def _sql(self, template: str) -> str:
        return template.format(now=self.now, real=self.real_type, skip_locked=self.skip_locked)

    def _run(self, template: str, **params: Any) -> list[dict[str, Any]]:
        return self._rows(self._sql(template), params)

    run_sql = _run  # for the store's other tables (app/jobs/voices.py)

    def _job(self, template: str, **params: Any) -> JobRecord | None:
        rows = self._run(template, **params)
        return JobRecord.from_row(rows[0]) if rows else None

    def migrate(self) -> None:
        """Lay out a new store, or bring an older one to ``SCHEMA_VERSION``, in one transaction
        that the other processes starting on the same store wait for."""
        with self._exclusive() as execute:

            def run(template: str, **params: Any) -> list[dict[str, Any]]:
                return execute(self._sql(template), params)

            run(_META_TABLE)
            recorded = run("SELECT value FROM job_store_meta WHERE name = 'schema_version'")
            version = int(recorded[0]["value"]) if recorded else None
            if version is not None and version > SCHEMA_VERSION:
                raise StoreFromTheFuture(
                    f"the job store was laid out by a newer release (schema {version}; this one knows "
                    f"{SCHEMA_VERSION}): upgrade this process, or point it at another JOBS_DATABASE_URL"
                )
            if version is None and run(self.table_exists, name="jobs")[0]["found"]:
                logger.info("Upgrading the job store from schema 1 to %d", SCHEMA_VERSION)
                for statement in self.upgrade_from_v1:
                    run(statement)
            for statement in _SCHEMA:
                run(statement)
            run(
                "INSERT INTO job_store_meta (name, value) VALUES ('schema_version', :version) "
                "ON CONFLICT (name) DO UPDATE SET value = :version",
                version=str(SCHEMA_VERSION),
            )
            run(
                "INSERT INTO job_store_meta (name, value) VALUES ('tenant_salt', :salt) ON CONFLICT (name) DO NOTHING",
                salt=secrets.token_hex(32),
            )
            self.tenant_salt = run("SELECT value FROM job_store_meta WHERE name = 'tenant_salt'")[0]["value"]

    # -- submissions and reads -------------------------------------------------------------

    def create(
        self,
        job: NewJob,
        *,
        result: str | None = None,
        progress: dict[str, Any] | None = None,
        result_key: str | None = None,
    ) -> JobRecord:
        """Queue ``job``, or store it already succeeded with ``result`` (a cache hit under ``result_key``)."""
        state = JobState.SUCCEEDED if result is not None else JobState.QUEUED
        try:
            created = self._job(
                """INSERT INTO jobs (id, tenant, state, created_at, updated_at, params, request_key, result_key,
                       audio_sha256, audio_bytes, filename, idempotency_key, callback_url, result, cache_hit, progress)
                   VALUES (:id, :tenant, :state, {now}, {now}, :params, :request_key, :result_key, :audio_sha256,
                       :audio_bytes, :filename, :idempotency_key, :callback_url, :result, :cache_hit, :progress)
                   RETURNING *""",
                id=job.id,
                tenant=job.tenant,
                state=state.value,
                params=json.dumps(job.params, sort_keys=True),
                request_key=job.request_key,
                result_key=result_key,
                audio_sha256=job.audio_sha256,
                audio_bytes=job.audio_bytes,
                filename=job.filename,
                idempotency_key=job.idempotency_key,
                callback_url=job.callback_url,
                result=result,
                cache_hit=int(result is not None),
                progress=json.dumps(progress or {}),
            )
        except Exception as exc:
            if self._is_duplicate(exc):
                raise DuplicateIdempotencyKey(job.idempotency_key) from exc
            raise
        assert created is not None
        if result is not None:  # finished on arrival: stamp it, and announce it like any other
            created = self._job(
                """UPDATE jobs SET finished_at = {now}, webhook_state = :webhook_state, webhook_next_at = {now}
                   WHERE id = :id RETURNING *""",
                id=job.id,
                webhook_state="pending" if job.callback_url else None,
            )
            assert created is not None
        return created

    def get(self, job_id: str) -> JobRecord | None:
        """Any tenant's job (the workers' view); routes read through ``owned``."""
        return self._job("SELECT * FROM jobs WHERE id = :id", id=job_id)

    def owned(self, job_id: str, tenant: str) -> JobRecord | None:
        """The job if ``tenant`` submitted it: another tenant's job reads as one that never existed."""
        return self._job("SELECT * FROM jobs WHERE id = :id AND tenant = :tenant", id=job_id, tenant=tenant)

    def by_idempotency_key(self, tenant: str, key: str) -> JobRecord | None:
        return self._job("SELECT * FROM jobs WHERE tenant = :tenant AND idempotency_key = :key", tenant=tenant, key=key)

    def cached(self, result_key: str) -> JobRecord | None:
        """The latest job that succeeded with the same ``result_key`` (audio, options, models, scope)."""
        return self._job(
            """SELECT * FROM jobs WHERE result_key = :key AND state = 'succeeded' AND result IS NOT NULL
               ORDER BY finished_at DESC LIMIT 1""",
            key=result_key,
        )

    def count(self, state: JobState) -> int:
        """Jobs in one state (an index range, not the whole table)."""
        return int(self._run("SELECT COUNT(*) AS n FROM jobs WHERE state = :state", state=state.value)[0]["n"])

    def counts(self) -> dict[JobState, int]:
        rows = self._run("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        counts = dict.fromkeys(JobState, 0)
        for row in rows:
            if row["state"] in JobState._value2member_map_:
                counts[JobState(row["state"])] = int(row["n"])
        return counts

    # -- a worker's side -------------------------------------------------------------------

    def claim(self, owner: str, lease_s: float) -> JobRecord | None:
        """Take the oldest queued job, leased to ``owner`` for ``lease_s`` seconds."""
        return self._job(
            """UPDATE jobs SET state = 'running', lease_owner = :owner, lease_expires = {now} + :lease,
                   attempts = attempts + 1, started_at = COALESCE(started_at, {now}), updated_at = {now}
               WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at, id LIMIT 1 {skip_locked})
                 AND state = 'queued'
               RETURNING *""",
            owner=owner,
            lease=lease_s,
        )

    def heartbeat(self, job_id: str, owner: str, lease_s: float, progress: dict[str, Any]) -> bool:
        """Renew the lease and record progress; False once the job is no longer this worker's
        to run (cancelled, or its lease ran out and someone else took it)."""
        rows = self._run(
            """UPDATE jobs SET lease_expires = {now} + :lease, progress = :progress, updated_at = {now}
               WHERE id = :id AND lease_owner = :owner AND state = 'running' RETURNING id""",
            id=job_id,
            owner=owner,
            lease=lease_s,
            progress=json.dumps(progress),
        )
        return bool(rows)

    def succeed(
        self,
        job_id: str,
        owner: str,
        result: str,
        progress: dict[str, Any],
        *,
        result_key: str | None = None,
        cache_hit: bool = False,
    ) -> bool:
        """Record the result; ``result_key`` lets later jobs with the same key reuse it."""
        rows = self._run(
            """UPDATE jobs SET state = 'succeeded', result = :result, progress = :progress, error = NULL,
                   result_key = :result_key, cache_hit = :cache_hit,
                   finished_at = {now}, updated_at = {now}, lease_owner = NULL, lease_expires = NULL,
                   webhook_state = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END,
                   webhook_next_at = {now}
               WHERE id = :id AND lease_owner = :owner AND state = 'running' RETURNING id""",
            id=job_id,
            owner=owner,
            result=result,
            progress=json.dumps(progress),
            result_key=result_key,
            cache_hit=int(cache_hit),
        )
        return bool(rows)

    def fail(self, job_id: str, owner: str | None, error: str, *, retry: bool, max_attempts: int) -> JobState | None:
        """Give the job back to the queue (``retry`` and attempts left) or fail it for good.

        ``owner`` None fails a job whatever holds it (a record that cannot be run at all).
        """
        row = self._run(
            """UPDATE jobs SET
                   state = CASE WHEN :retry = 1 AND attempts < :max_attempts THEN 'queued' ELSE 'failed' END,
                   error = :error, updated_at = {now}, lease_owner = NULL, lease_expires = NULL,
                   finished_at = CASE WHEN :retry = 1 AND attempts < :max_attempts THEN NULL ELSE {now} END,
                   webhook_state = CASE WHEN callback_url IS NULL OR (:retry = 1 AND attempts < :max_attempts)
                                   THEN NULL ELSE 'pending' END,
                   webhook_next_at = {now}
               WHERE id = :id AND state = 'running' AND (CAST(:owner AS TEXT) IS NULL OR lease_owner = :owner)
               RETURNING state""",
            id=job_id,
            owner=owner,
            error=error,
            retry=int(retry),
            max_attempts=max_attempts,
        )
        return JobState(row[0]["state"]) if row else None

    def release(self, job_id: str, owner: str, reason: str) -> bool:
        """Back to the queue without using up an attempt (shutdown, a full budget)."""
        rows = self._run(
            """UPDATE jobs SET state = 'queued', attempts = attempts - 1, error = :reason,
                   lease_owner = NULL, lease_expires = NULL, updated_at = {now}
               WHERE id = :id AND lease_owner = :owner AND state = 'running' RETURNING id""",
            id=job_id,
            owner=owner,
            reason=reason,
        )
        return bool(rows)

    def recover(self, max_attempts: int, *, everything_running: bool = False) -> int:
        """Jobs whose worker stopped renewing its lease go back to the queue, or fail once they
        used every attempt. ``everything_running``: the embedded store's process restarted, so
        no job it holds is running anywhere."""
        expired = "TRUE" if everything_running else "lease_expires < {now}"
        rows = self._run(
            f"""UPDATE jobs SET
                   state = CASE WHEN attempts < :max_attempts THEN 'queued' ELSE 'failed' END,
                   error = CASE WHEN attempts < :max_attempts THEN error
                           ELSE 'The worker running it stopped, ' || attempts || ' time(s); giving up.' END,
                   finished_at = CASE WHEN attempts < :max_attempts THEN NULL ELSE {{now}} END,
                   webhook_state = CASE WHEN attempts < :max_attempts OR callback_url IS NULL
                                   THEN NULL ELSE 'pending' END,
                   webhook_next_at = {{now}},
                   lease_owner = NULL, lease_expires = NULL, updated_at = {{now}}
               WHERE state = 'running' AND {expired}
               RETURNING id""",
            max_attempts=max_attempts,
        )
        return len(rows)

    def cancel(self, job_id: str, tenant: str) -> JobRecord | None:
        """Cancel ``tenant``'s queued or running job (its worker sees it at the next heartbeat)."""
        return self._job(
            """UPDATE jobs SET state = 'cancelled', finished_at = {now}, updated_at = {now},
                   error = 'Cancelled by a client.', lease_owner = NULL, lease_expires = NULL,
                   webhook_state = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END,
                   webhook_next_at = {now}
               WHERE id = :id AND tenant = :tenant AND state IN ('queued', 'running') RETURNING *""",
            id=job_id,
            tenant=tenant,
        )

    def delete(self, job_id: str, tenant: str) -> bool:
        """Erase ``tenant``'s job whatever its state (a running one's worker stops at its next heartbeat)."""
        return bool(
            self._run("DELETE FROM jobs WHERE id = :id AND tenant = :tenant RETURNING id", id=job_id, tenant=tenant)
        )

    # -- webhooks --------------------------------------------------------------------------

    def claim_webhook(self, lease_s: float) -> JobRecord | None:
        """A finished job whose webhook is due, held for ``lease_s`` against other senders."""
        return self._job(
            """UPDATE jobs SET webhook_next_at = {now} + :lease, webhook_attempts = webhook_attempts + 1
               WHERE id = (SELECT id FROM jobs WHERE webhook_state = 'pending' AND webhook_next_at <= {now}
                           ORDER BY webhook_next_at LIMIT 1 {skip_locked})
                 AND webhook_state = 'pending'
               RETURNING *""",
            lease=lease_s,
        )

    def webhook_done(self, job_id: str, *, delivered: bool, error: str | None, retry_in_s: float | None) -> None:
        state = "delivered" if delivered else ("pending" if retry_in_s is not None else "failed")
        self._run(
            """UPDATE jobs SET webhook_state = :state, webhook_error = :error,
                   webhook_next_at = {now} + :retry_in WHERE id = :id""",
            id=job_id,
            state=state,
            error=error,
            retry_in=retry_in_s or 0.0,
        )

    # -- retention -------------------------------------------------------------------------

    def expire(self, older_than_s: float) -> list[str]:
        """Delete the jobs that finished more than ``older_than_s`` ago; their ids."""
        rows = self._run(
            f"DELETE FROM jobs WHERE state IN {_FINISHED} AND finished_at < {{now}} - :age RETURNING id",
            age=older_than_s,
        )
        return [row["id"] for row in rows]

    def ids(self) -> set[str]:
        return {row["id"] for row in self._run("SELECT id FROM jobs")}
