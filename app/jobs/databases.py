"""The two databases the job store runs on: SQLite, embedded, and Postgres, shared by a scale-out.

Each brings its connection, its transactions and its dialect's few differences; the
statements themselves are ``JobStore``'s (app/jobs/store.py).
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.jobs.store import JOBS_TABLE, V1_COLUMNS, JobStore

logger = logging.getLogger(__name__)


class SqliteJobStore(JobStore):
    now = "((julianday('now') - 2440587.5) * 86400.0)"
    embedded = True
    table_exists = "SELECT COUNT(*) > 0 AS found FROM sqlite_master WHERE type = 'table' AND name = :name"
    # SQLite cannot drop a column's UNIQUE: version 1's table is copied into version 2's.
    upgrade_from_v1 = (
        "DROP INDEX IF EXISTS jobs_queue",
        "DROP INDEX IF EXISTS jobs_request",
        "DROP INDEX IF EXISTS jobs_webhooks",
        "ALTER TABLE jobs RENAME TO jobs_v1",
        JOBS_TABLE,
        f"INSERT INTO jobs ({V1_COLUMNS}) SELECT {V1_COLUMNS} FROM jobs_v1",
        "DROP TABLE jobs_v1",
    )

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        # Autocommit: every statement is its own transaction; writers are serialised by SQLite.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self.migrate()

    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute(sql, params)
            return [dict(row) for row in cursor.fetchall()]

    @contextmanager
    def _exclusive(self) -> Iterator[Callable[[str, dict[str, Any]], list[dict[str, Any]]]]:
        def execute(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
            return [dict(row) for row in self._db.execute(sql, params).fetchall()]

        with self._lock:
            self._db.execute("BEGIN EXCLUSIVE")
            try:
                yield execute
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _is_duplicate(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.IntegrityError) and "idempotency_key" in str(error)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresJobStore(JobStore):
    real_type = "DOUBLE PRECISION"
    skip_locked = "FOR UPDATE SKIP LOCKED"
    now = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"
    table_exists = "SELECT to_regclass(:name) IS NOT NULL AS found"
    upgrade_from_v1 = (
        "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS tenant TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE jobs ADD COLUMN IF NOT EXISTS result_key TEXT",
        "ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_idempotency_key_key",
        "DROP INDEX IF EXISTS jobs_request",
    )
    _MIGRATION_LOCK = 7_160_423_101  # pg_advisory_xact_lock's key: this service's migrations

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._db: Any = None
        self.migrate()

    def _connect(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=10)

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """The store's connection, reopened once if the server dropped it (restart, failover)."""
        import psycopg

        with self._lock:
            if self._db is None or self._db.closed:
                self._db = self._connect()
            try:
                yield self._db
            except psycopg.OperationalError:
                self._db.close()
                self._db = None
                raise

    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        import psycopg

        sql = _named_to_pyformat(sql)
        for attempt in (1, 2):
            try:
                with self.connection() as db, db.cursor() as cursor:
                    cursor.execute(sql, params)
                    return list(cursor.fetchall()) if cursor.description else []
            except psycopg.OperationalError:
                if attempt == 2:
                    raise
                logger.warning("Lost the connection to Postgres; reconnecting")
        raise AssertionError("unreachable")

    @contextmanager
    def _exclusive(self) -> Iterator[Callable[[str, dict[str, Any]], list[dict[str, Any]]]]:
        with self.connection() as db, db.transaction(), db.cursor() as cursor:

            def execute(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
                cursor.execute(_named_to_pyformat(sql), params)
                return list(cursor.fetchall()) if cursor.description else []

            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._MIGRATION_LOCK,))
            yield execute

    def _is_duplicate(self, error: Exception) -> bool:
        import psycopg.errors

        return isinstance(error, psycopg.errors.UniqueViolation)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()


_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


def _named_to_pyformat(sql: str) -> str:
    """``:name`` (SQLite's style, which the statements use) to ``%(name)s`` (psycopg's)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


def open_store(url: str | None, jobs_dir: Path) -> JobStore:
    """``url`` a ``postgresql://`` URL for the shared engine; empty for SQLite in ``jobs_dir``."""
    if url and url.startswith(("postgresql://", "postgres://")):
        return PostgresJobStore(url)
    if url:
        raise ValueError(f"JOBS_DATABASE_URL must be a postgresql:// URL (or empty for SQLite), not {url!r}")
    return SqliteJobStore(jobs_dir / "jobs.db")
