"""Where a job's uploaded audio waits for its worker, and stays until the job expires.

- ``FolderAudioStore``: a folder next to the SQLite database (the embedded default).
- ``PostgresAudioStore``: chunks in a table of the shared database, so every machine of a
  scale-out reads the same uploads with no shared file system. Chunks keep memory bounded
  in both directions (an upload may be hundreds of megabytes).
A worker reads the folder's file in place; from Postgres it gets a temporary copy (ffmpeg
needs a path) in a scratch folder of its own, which the next start of the process on the same
host removes if a crash left it behind.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.jobs.databases import PostgresJobStore

_CHUNK = 4 * 1024 * 1024


class AudioMissing(Exception):
    """The job's upload is gone (deleted by hand, a lost volume)."""


class AudioStore(ABC):
    @abstractmethod
    def put(self, job_id: str, source: Path) -> None:
        """Keep a copy of ``source`` for ``job_id``; OSError (disk full) leaves nothing behind."""

    @abstractmethod
    def _copy_out(self, job_id: str, sink: Path) -> None: ...

    @abstractmethod
    def delete(self, job_id: str) -> None: ...

    @contextmanager
    def fetched(self, job_id: str, scratch: Path) -> Iterator[Path]:
        """The job's audio as a temporary file in ``scratch``, removed on the way out."""
        scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"job-{job_id}-", suffix=".bin", dir=scratch)
        os.close(fd)
        path = Path(name)
        try:
            self._copy_out(job_id, path)
            yield path
        finally:
            path.unlink(missing_ok=True)


class FolderAudioStore(AudioStore):
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        for stale in folder.glob("*.partial"):  # a copy that a crash interrupted
            stale.unlink(missing_ok=True)

    def _path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.audio"

    def put(self, job_id: str, source: Path) -> None:
        partial = self.folder / f"{job_id}.partial"
        try:
            shutil.copyfile(source, partial)
            partial.replace(self._path(job_id))
        finally:
            partial.unlink(missing_ok=True)

    def _copy_out(self, job_id: str, sink: Path) -> None:
        try:
            shutil.copyfile(self._path(job_id), sink)
        except FileNotFoundError:
            raise AudioMissing(job_id) from None

    def delete(self, job_id: str) -> None:
        self._path(job_id).unlink(missing_ok=True)

    @contextmanager
    def fetched(self, job_id: str, scratch: Path) -> Iterator[Path]:
        """The stored file itself: read in place, no copy."""
        path = self._path(job_id)
        if not path.is_file():
            raise AudioMissing(job_id)
        yield path

    def ids(self) -> set[str]:
        return {path.stem for path in self.folder.glob("*.audio")}


class PostgresAudioStore(AudioStore):
    _SCHEMA = """CREATE TABLE IF NOT EXISTS job_audio (
        job_id TEXT NOT NULL, seq INTEGER NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (job_id, seq))"""

    def __init__(self, store: PostgresJobStore) -> None:
        self.store = store
        with store.connection() as db:
            db.execute(self._SCHEMA)

    def put(self, job_id: str, source: Path) -> None:
        with self.store.connection() as db, db.transaction(), source.open("rb") as audio:
            db.execute("DELETE FROM job_audio WHERE job_id = %s", (job_id,))
            seq = 0
            while chunk := audio.read(_CHUNK):
                db.execute("INSERT INTO job_audio (job_id, seq, data) VALUES (%s, %s, %s)", (job_id, seq, chunk))
                seq += 1

    def _copy_out(self, job_id: str, sink: Path) -> None:
        with self.store.connection() as db, sink.open("wb") as out:
            # One chunk per round trip: bounded memory whatever the upload's size.
            seq, found = 0, False
            while True:
                row = db.execute("SELECT data FROM job_audio WHERE job_id = %s AND seq = %s", (job_id, seq)).fetchone()
                if row is None:
                    break
                out.write(row["data"])
                seq, found = seq + 1, True
        if not found:
            raise AudioMissing(job_id)

    def delete(self, job_id: str) -> None:
        with self.store.connection() as db:
            db.execute("DELETE FROM job_audio WHERE job_id = %s", (job_id,))

    def ids(self) -> set[str]:
        with self.store.connection() as db:
            return {row["job_id"] for row in db.execute("SELECT DISTINCT job_id FROM job_audio").fetchall()}


def scratch_dir(temp_dir: Path | None) -> Path:
    """This process's folder for temporary copies (made when the first copy is)."""
    return (temp_dir or Path(tempfile.gettempdir())) / f"job-audio-{socket.gethostname()}-{os.getpid()}"


def clear_stale_scratch(temp_dir: Path | None) -> None:
    """Remove the scratch folders that earlier lives of this process (a crash; a restarted
    container keeps its host name and often its pid) or dead processes on this host left."""
    base = temp_dir or Path(tempfile.gettempdir())
    for stale in base.glob(f"job-audio-{socket.gethostname()}-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            shutil.rmtree(stale, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_audio_store(store: object, folder: Path) -> AudioStore:
    return PostgresAudioStore(store) if isinstance(store, PostgresJobStore) else FolderAudioStore(folder)
