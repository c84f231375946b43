"""The worker side of jobs: claim, run through the same pipeline and scheduler as synchronous
requests, report progress, store the result, announce it; and the store's housekeeping.

Threads, not tasks: the work is the pipeline's (blocking, GPU) and the store's (blocking SQL).
- ``JOB_CONCURRENCY`` job threads each claim one job at a time (its default follows the device
  the models loaded on, so the threads past it wait until then). A job's heartbeat thread
  renews its lease and records progress every quarter lease; a heartbeat that finds the job
  no longer this worker's (cancelled by a client, or taken back after a lost lease) cancels
  the work at its next stage or batch boundary.
- One housekeeping thread gives expired leases back to the queue (a worker elsewhere died),
  deletes jobs past their retention with their audio, and sends due webhooks.
On shutdown, running jobs are cancelled and handed back to the queue without using up an
attempt; a crash is caught by the lease instead (or at start-up, for the embedded store).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict
from functools import partial

from app.config import Settings
from app.control.cancellation import CancelToken
from app.control.progress import Progress
from app.engine.options import ResolvedOptions
from app.engine.pipeline import TranscriptionPipeline
from app.errors import Busy, Cancelled, ServiceError
from app.jobs.audio_store import AudioMissing, AudioStore, clear_stale_scratch, scratch_dir
from app.jobs.keys import cache_scope, result_key
from app.jobs.options import StoredOptionsUnreadable, load_options
from app.jobs.records import JobRecord, JobState
from app.jobs.store import JobStore
from app.jobs.views import webhook_body
from app.jobs.webhooks import WebhookPolicy, backoff_s, send
from app.serving.transcriber import Transcriber
from app.transcript import Transcript, dump_transcript

logger = logging.getLogger(__name__)


_IDLE_POLL_S = 0.5  # how often an idle worker looks for queued jobs
_SPARE_POLL_S = 2.0  # how often a worker past JOB_CONCURRENCY (the device not known yet, or the CPU) looks again
_BUSY_RETRY_S = 2.0  # a job refused by the memory budget waits this long before going back
_RETENTION_EVERY_S = 60.0


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        audio: AudioStore,
        settings: Settings,
        transcriber: Transcriber,
        queued: threading.Event,
    ) -> None:
        self.store = store
        self.audio = audio
        self.settings = settings
        self.transcriber = transcriber
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s = settings.job_lease_s
        self.policy = WebhookPolicy.from_settings(settings)
        self._stop = threading.Event()
        self._wake = queued  # set when a job was submitted in this process: claim it now
        self._threads: list[threading.Thread] = []
        self._running: dict[str, CancelToken] = {}
        self._running_lock = threading.Lock()
        self._scratch = scratch_dir(settings.temp_dir)

    # -- life ------------------------------------------------------------------------------

    def start(self, *, run_jobs: bool) -> None:
        """Start housekeeping, and job threads when ``run_jobs``: as many as ``JOB_CONCURRENCY``
        may be on any device (those past what the loaded device allows stay idle)."""
        clear_stale_scratch(self.settings.temp_dir)
        if self.store.embedded:
            taken_back = self.store.recover(self.settings.job_max_attempts, everything_running=True)
            if taken_back:
                logger.warning("%d job(s) were running when this process last stopped: queued again", taken_back)
        targets = [("jobs-housekeeping", self._housekeeping)]
        if run_jobs:
            most = max(self.settings.jobs_at_once("cuda"), self.settings.jobs_at_once("cpu"))
            targets += [(f"jobs-worker-{n}", partial(self._work, n)) for n in range(most)]
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop claiming; cancel running jobs (they go back to the queue) and wait for the threads."""
        self._stop.set()
        self._wake.set()
        with self._running_lock:
            for token in self._running.values():
                token.cancel("the server is shutting down")
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))

    @property
    def running(self) -> int:
        with self._running_lock:
            return len(self._running)

    # -- jobs ------------------------------------------------------------------------------

    def _work(self, index: int) -> None:
        while not self._stop.is_set():
            # As many jobs at once as JOB_CONCURRENCY gives the device the models loaded on, and
            # none while they load (or failed) or the server drains.
            if index >= self.settings.jobs_at_once(self.transcriber.device):
                self._stop.wait(_SPARE_POLL_S)
                continue
            if not self.transcriber.may_start():
                self._stop.wait(_IDLE_POLL_S)
                continue
            try:
                job = self.store.claim(self.owner, self.lease_s)
            except Exception:
                logger.exception("Could not claim a job; retrying")
                self._stop.wait(_IDLE_POLL_S * 4)
                continue
            if job is None:
                # Other processes' submissions (a shared store) are found by this poll.
                self._wake.wait(_IDLE_POLL_S)
                self._wake.clear()
                continue
            if self._stop.is_set():  # claimed as the shutdown began: hand it straight back
                self.store.release(job.id, self.owner, "The server shut down before running it; queued again.")
                return
            try:
                self.run(job, self.transcriber.pipeline())
            except Exception:  # the store itself failed; the lease brings the job back
                logger.exception("Job %s: could not record its outcome", job.id)

    def run(self, job: JobRecord, pipeline: TranscriptionPipeline) -> None:
        """Run one claimed job to its end state."""
        if job.state is JobState.FAILED:  # its row did not parse
            self.store.fail(job.id, None, job.error or "corrupt job record", retry=False, max_attempts=0)
            return
        options = self._options(job, pipeline)
        if options is None:
            return
        scope = cache_scope(job.tenant, shared=self.settings.jobs_shared_cache)
        reusable = result_key(job.audio_sha256, options, pipeline.fingerprint(options.model), scope)
        cached = self.store.cached(reusable)
        if cached is not None and cached.result is not None:  # made by these models since it was queued
            reused = self.store.succeed(
                job.id, self.owner, cached.result, cached.progress, result_key=reusable, cache_hit=True
            )
            if reused:
                logger.info("Job %s: same audio, options and models as job %s, result reused", job.id, cached.id)
            return
        cancel, progress = CancelToken(), Progress()
        with self._running_lock:
            self._running[job.id] = cancel
        beat = threading.Thread(
            target=self._heartbeat, args=(job.id, cancel, progress), name=f"job-{job.id}-lease", daemon=True
        )
        beat.start()
        try:
            outcome = self._transcribe(job, options, cancel, progress)
        finally:
            with self._running_lock:
                self._running.pop(job.id, None)
            cancel.cancel("the job ended")  # stops the heartbeat
            beat.join()
        self._record(job, outcome, progress, reusable)

    def _options(self, job: JobRecord, pipeline: TranscriptionPipeline) -> ResolvedOptions | None:
        """The job's stored options resolved against these models; None once the job was dealt with."""
        try:
            return pipeline.resolve(load_options(job.params))
        except StoredOptionsUnreadable as exc:
            if exc.newer:  # a rolling deploy: a worker of the newer release runs it
                self._stop.wait(_BUSY_RETRY_S)
                self.store.release(job.id, self.owner, str(exc))
            else:
                self.store.fail(job.id, self.owner, str(exc), retry=False, max_attempts=0)
        except ServiceError as exc:  # options these models cannot serve (a language, translation)
            self.store.fail(job.id, self.owner, exc.message, retry=False, max_attempts=0)
        return None

    def _transcribe(
        self,
        job: JobRecord,
        options: ResolvedOptions,
        cancel: CancelToken,
        progress: Progress,
    ) -> Transcript | Exception:
        try:
            with self.audio.fetched(job.id, self._scratch) as path:
                return self.transcriber.transcribe_file(path, options, cancel, progress)
        except Exception as exc:
            return exc

    def _record(self, job: JobRecord, outcome: Transcript | Exception, progress: Progress, reusable: str) -> None:
        store, owner, attempts = self.store, self.owner, self.settings.job_max_attempts
        if isinstance(outcome, Transcript):
            progress.audio(outcome.duration)
            progress.finish()
            result = dump_transcript(outcome)
            if store.succeed(job.id, owner, result, asdict(progress.snapshot()), result_key=reusable):
                logger.info("Job %s succeeded (%.1f s of audio)", job.id, outcome.duration)
            return
        if isinstance(outcome, Cancelled):
            if self._stop.is_set():  # shutting down: back to the queue, the attempt refunded
                store.release(job.id, owner, "The server shut down while running it; queued again.")
            return  # otherwise cancelled by a client (or the lease lost): the store already says so
        if isinstance(outcome, Busy):  # the memory budget is full for now: try again shortly
            self._stop.wait(_BUSY_RETRY_S)
            store.release(job.id, owner, str(outcome))
            return
        retry, reason = _failure(outcome)
        if retry:
            logger.error("Job %s failed (attempt %d): %s", job.id, job.attempts, reason, exc_info=outcome)
        final = store.fail(job.id, owner, reason, retry=retry, max_attempts=attempts)
        if final is JobState.FAILED:
            logger.info("Job %s failed: %s", job.id, reason)

    def _heartbeat(self, job_id: str, cancel: CancelToken, progress: Progress) -> None:
        interval = min(self.lease_s / 4, 2.0)  # progress reaches readers at least this often
        renewed = time.monotonic()
        while not cancel.cancelled:
            try:
                mine = self.store.heartbeat(job_id, self.owner, self.lease_s, asdict(progress.snapshot()))
                renewed = time.monotonic()
                if not mine:
                    cancel.cancel("the job was cancelled")
                    return
            except Exception:
                logger.exception("Job %s: could not renew its lease", job_id)
                if time.monotonic() - renewed > self.lease_s:  # someone else may run it now
                    cancel.cancel("its lease on the job store ran out")
                    return
            cancel.pause(interval)

    # -- housekeeping ----------------------------------------------------------------------

    def _housekeeping(self) -> None:
        last_retention = 0.0
        while not self._stop.is_set():
            try:
                recovered = self.store.recover(self.settings.job_max_attempts)
                if recovered:
                    logger.warning("%d job(s) lost their worker (lease expired): queued again or failed", recovered)
                if time.monotonic() - last_retention > _RETENTION_EVERY_S:
                    last_retention = time.monotonic()
                    self.expire()
                while not self._stop.is_set() and self.send_due_webhook():
                    pass
            except Exception:
                logger.exception("Job housekeeping failed; retrying")
            self._stop.wait(min(self.lease_s / 4, 1.0))

    def expire(self) -> int:
        expired = self.store.expire(self.settings.job_retention_hours * 3600)
        for job_id in expired:
            self.audio.delete(job_id)
        if expired:
            logger.info("Deleted %d job(s) past their retention, with their audio", len(expired))
        return len(expired)

    def send_due_webhook(self) -> bool:
        """Send one due webhook; False when none is due."""
        job = self.store.claim_webhook(lease_s=self.settings.webhook_timeout_s * 2 + 5)
        if job is None:
            return False
        secret = self.settings.webhook_secret
        if job.callback_url is None or secret is None:
            self.store.webhook_done(job.id, delivered=False, error="no callback URL or secret", retry_in_s=None)
            return True
        body = json.dumps(webhook_body(job)).encode()
        delivery = send(
            job.callback_url,
            body,
            job_id=job.id,
            secret=secret.get_secret_value().encode(),
            policy=self.policy,
            timeout_s=self.settings.webhook_timeout_s,
        )
        retry = not delivery.delivered and not delivery.permanent
        retry = retry and job.webhook_attempts < self.settings.webhook_max_attempts
        self.store.webhook_done(
            job.id,
            delivered=delivery.delivered,
            error=delivery.error,
            retry_in_s=backoff_s(job.webhook_attempts) if retry else None,
        )
        if not delivery.delivered:
            logger.warning("Webhook for job %s (attempt %d): %s", job.id, job.webhook_attempts, delivery.error)
        return True


def _failure(error: Exception) -> tuple[bool, str]:
    """Whether another attempt could succeed, and the reason a client reads."""
    if isinstance(error, AudioMissing):
        return False, "The job's uploaded audio is gone from the job store."
    if isinstance(error, ServiceError):  # the request's own fault (4xx) will not change; a 5xx may
        return error.status_code >= 500, error.message
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True, "The server ran out of disk space while running the job."
    return True, f"Internal error: {type(error).__name__}: {error}"
