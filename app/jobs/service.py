"""The submission side of jobs: store the upload once, answer repeats from what is stored.

- The same audio (sha256) with the same options and models gives the stored result at once,
  as a new job marked ``cache_hit``, instead of transcribing again — within one tenant's
  results (app/jobs/keys.py), or everyone's with JOBS_SHARED_CACHE.
- An ``Idempotency-Key`` makes a retried submission return the job it created the first
  time; the same key with a different file or options is refused (409). Keys are per tenant:
  another tenant's use of the same key is another job.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import threading
import uuid
from pathlib import Path

from app.config import Settings
from app.engine.options import TranscribeOptions
from app.engine.pipeline import TranscriptionPipeline
from app.errors import Busy, Conflict, StorageFull, retry_later
from app.jobs.audio_store import AudioStore, open_audio_store
from app.jobs.databases import open_store
from app.jobs.keys import cache_scope, request_key, result_key, tenant_id
from app.jobs.options import dump_options
from app.jobs.records import JobRecord, JobState, NewJob
from app.jobs.store import DuplicateIdempotencyKey, JobStore
from app.jobs.voices import VoiceBook

logger = logging.getLogger(__name__)

_HASH_CHUNK = 1024 * 1024


class JobService:
    """Every method takes the tenant (its id, ``tenant_of``): another tenant's job, key or
    result is never found, exactly as if it did not exist."""

    def __init__(self, store: JobStore, audio: AudioStore, settings: Settings, queued: threading.Event) -> None:
        self.store = store
        self.audio = audio
        self.settings = settings
        self.queued = queued  # set on each submission: this process's idle workers claim at once
        self.voices = VoiceBook(store)

    @classmethod
    def open(cls, settings: Settings, queued: threading.Event) -> JobService:
        url = settings.jobs_database_url.get_secret_value() if settings.jobs_database_url else None
        store = open_store(url, settings.jobs_folder)
        return cls(store, open_audio_store(store, settings.jobs_folder / "audio"), settings, queued)

    def close(self) -> None:
        self.store.close()

    def tenant_of(self, identity: str) -> str:
        return tenant_id(self.store.tenant_salt, identity)

    def submit(
        self,
        path: Path,
        *,
        tenant: str,
        options: TranscribeOptions,
        local: TranscriptionPipeline | None = None,
        filename: str | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Store a job for the upload at ``path``; the job, and whether it was there already.

        With ``local`` (this process's ready models) a result those models made for the same
        audio and options in the cache's scope is reused at once; workers look again when they
        claim the job, with their own models.
        """
        audio_sha256, size = _sha256(path)
        stored = dump_options(options)
        digest = request_key(audio_sha256, stored)
        if idempotency_key is not None and (earlier := self._replay(tenant, idempotency_key, digest)) is not None:
            return earlier, True
        reusable = None
        if local is not None:
            scope = cache_scope(tenant, shared=self.settings.jobs_shared_cache)
            resolved = local.resolve(options)
            reusable = result_key(audio_sha256, resolved, local.fingerprint(resolved.model), scope)
        cached = self.store.cached(reusable) if reusable is not None else None
        if cached is None and self.store.count(JobState.QUEUED) >= self.settings.max_queued_jobs:
            raise Busy(
                f"The job queue is full ({self.settings.max_queued_jobs} queued); retry later.",
                headers=retry_later(30),
            )
        job = NewJob(
            id=uuid.uuid4().hex,
            tenant=tenant,
            params=stored,
            request_key=digest,
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
                record = self.store.create(job, result=cached.result, progress=cached.progress, result_key=reusable)
            else:
                record = self.store.create(job)
        except DuplicateIdempotencyKey:  # the same key, submitted at the same moment
            self.audio.delete(job.id)
            assert idempotency_key is not None
            earlier = self._replay(tenant, idempotency_key, digest)
            assert earlier is not None
            return earlier, True
        except BaseException:
            self.audio.delete(job.id)
            raise
        if cached is not None:
            logger.info("Job %s: same audio, options and models as job %s, result reused", job.id, cached.id)
        else:
            self.queued.set()
        return record, False

    def _replay(self, tenant: str, idempotency_key: str, digest: str) -> JobRecord | None:
        earlier = self.store.by_idempotency_key(tenant, idempotency_key)
        if earlier is not None and earlier.request_key != digest:
            raise Conflict("This Idempotency-Key was used for a different file or different options.")
        return earlier

    def get(self, job_id: str, tenant: str) -> JobRecord | None:
        return self.store.owned(job_id, tenant)

    def cancel(self, job_id: str, tenant: str) -> JobRecord | None:
        return self.store.cancel(job_id, tenant)

    def delete(self, job_id: str, tenant: str) -> bool:
        """Erase the job, its transcript and its audio; False when the tenant has no such job."""
        if not self.store.delete(job_id, tenant):
            return False
        self.audio.delete(job_id)
        return True

    def counts(self) -> dict[JobState, int]:
        return self.store.counts()


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as audio:
        while chunk := audio.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
