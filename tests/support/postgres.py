"""A throwaway Postgres server for the tests, from Debian's ``postgresql`` package (no mocks).

``scripts/bootstrap.sh dev`` installs the package; the server runs from a fresh data folder on
a free loopback port with trust authentication, as the ``postgres`` user when the tests run
as root (Postgres refuses to run as root), and is stopped and deleted after.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.server import free_port


class PostgresUnavailable(RuntimeError):
    pass


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise PostgresUnavailable("Debian's postgresql package is not installed (scripts/bootstrap.sh dev installs it)")
    return Path(found[-1]).parent


@contextmanager
def postgres_server() -> Iterator[str]:
    """A running server; yields a ``postgresql://`` URL to its ``postgres`` database."""
    bindir = _bindir()
    as_root = os.geteuid() == 0
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="jobs-pg-"))
    data, socket_dir = base / "data", base / "socket"
    socket_dir.mkdir()
    prefix: list[str] = []
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(socket_dir, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*command: str) -> None:
        subprocess.run([*prefix, *command], check=True, capture_output=True, cwd=base, timeout=120)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "jobs", "--no-sync", "-E", "UTF8")
        options = f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "server.log"), "-w", "start")
        url = f"postgresql://jobs@127.0.0.1:{port}/postgres"
        _wait_for(url)
        yield url
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            cwd=base,
            timeout=60,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


def _wait_for(url: str, timeout_s: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def reset(url: str) -> None:
    """Drop the job tables, so a test starts from an empty store."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS jobs, job_audio, job_store_meta")
