"""The submission side of jobs: store the upload once, answer repeats from what is stored.

- The same audio (sha256) with the same options and models gives the stored result at once,
  as a new job marked ``cache_hit``, instead of transcribing again.
- An ``Idempotency-Key`` makes a retried submission return the job it created the first
  time; the same key with a different file or options is refused (409).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.config import Settings
from app.errors import Busy, Conflict, StorageFull, retry_later
from app.jobs.audio_store import AudioStore, open_audio_store
from app.jobs.records import JobRecord, JobState, NewJob
from app.jobs.store import DuplicateIdempotencyKey, JobStore, open_store

logger = logging.getLogger(__name__)

_HASH_CHUNK = 1024 * 1024

# Settings that change what a transcription produces: a cached result must have been made by
# the same ones.
_RESULT_SETTINGS = (
    "whisper_model",
    "compute_type",
    "max_new_tokens",
    "enable_alignment",
    "align_models",
    "enable_diarization",
    "diarizer",
    "diarization_pipeline",
)


class JobService:
    def __init__(self, store: JobStore, audio: AudioStore, settings: Settings) -> None:
        self.store = store
        self.audio = audio
        self.settings = settings
        self.on_queued: Callable[[], None] = lambda: None  # the local runner's wake-up
        fingerprint = settings.model_dump(include=set(_RESULT_SETTINGS), mode="json")
        self._models = json.dumps(fingerprint, sort_keys=True)

    @classmethod
    def open(cls, settings: Settings) -> JobService:
        url = settings.jobs_database_url.get_secret_value() if settings.jobs_database_url else None
        store = open_store(url, settings.jobs_folder)
        return cls(store, open_audio_store(store, settings.jobs_folder / "audio"), settings)

    def close(self) -> None:
        self.store.close()

    def request_key(self, audio_sha256: str, params: dict[str, Any]) -> str:
        canonical = json.dumps({"audio": audio_sha256, "params": params, "models": self._models}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def submit(
        self,
        path: Path,
        *,
        filename: str | None,
        params: dict[str, Any],
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Store a job for the upload at ``path``; the job, and whether it was there already."""
        audio_sha256, size = _sha256(path)
        request_key = self.request_key(audio_sha256, params)
        if idempotency_key is not None and (earlier := self._replay(idempotency_key, request_key)) is not None:
            return earlier, True
        cached = self.store.cached(request_key)
        if cached is None and self.store.count(JobState.QUEUED) >= self.settings.max_queued_jobs:
            raise Busy(
                f"The job queue is full ({self.settings.max_queued_jobs} queued); retry later.",
                headers=retry_later(30),
            )
        job = NewJob(
            id=uuid.uuid4().hex,
            params=params,
            request_key=request_key,
            audio_sha256=audio_sha256,
            audio_bytes=size,
            filename=filename,
            idempotency_key=idempotency_key,
            callback_url=callback_url,
        )
        try:
            self.audio.put(job.id, path)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull("The server's job storage is full; retry later.", headers=retry_later(60)) from None
            raise
        try:
            if cached is not None:
                record = self.store.create(job, result=cached.result, progress=cached.progress)
            else:
                record = self.store.create(job)
        except DuplicateIdempotencyKey:  # the same key, submitted at the same moment
            self.audio.delete(job.id)
            assert idempotency_key is not None
            earlier = self._replay(idempotency_key, request_key)
            assert earlier is not None
            return earlier, True
        except BaseException:
            self.audio.delete(job.id)
            raise
        if cached is not None:
            logger.info("Job %s: same audio and options as job %s, result reused", job.id, cached.id)
        else:
            self.on_queued()
        return record, False

    def _replay(self, idempotency_key: str, request_key: str) -> JobRecord | None:
        earlier = self.store.by_idempotency_key(idempotency_key)
        if earlier is not None and earlier.request_key != request_key:
            raise Conflict("This Idempotency-Key was used for a different file or different options.")
        return earlier

    def get(self, job_id: str) -> JobRecord | None:
        return self.store.get(job_id)

    def cancel(self, job_id: str) -> JobRecord | None:
        return self.store.cancel(job_id)

    def counts(self) -> dict[JobState, int]:
        return self.store.counts()


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as audio:
        while chunk := audio.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
