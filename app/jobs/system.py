"""The jobs part of one process: its store (opened in the background, retried until it answers),
the submission service the routes use, and the runner, started once the store is open."""

from __future__ import annotations

import logging
import threading

from app.config import Settings
from app.jobs.runner import JobRunner
from app.jobs.service import JobService
from app.serving.transcriber import Transcriber

logger = logging.getLogger(__name__)

_REOPEN_S = 5.0


class JobSystem:
    def __init__(
        self,
        settings: Settings,
        transcriber: Transcriber,
    ) -> None:
        self.settings = settings
        self.transcriber = transcriber
        self.service: JobService | None = None
        self.runner: JobRunner | None = None
        self.failure: str | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        threading.Thread(target=self._open, name="jobs-open", daemon=True).start()

    def stored_voices(self, identity: str, names: list[str]) -> dict[str, str]:
        """The clips (data URLs) of those ``names`` in the voice book of the tenant ``identity``
        names; none while the job store, which holds the book, is not open yet."""
        service = self.service
        return service.voices.clips(service.tenant_of(identity), names) if service is not None else {}

    def _open(self) -> None:
        while not self._closed.is_set():
            try:
                self._open_once()
                return
            except Exception as exc:
                self.failure = f"{type(exc).__name__}: {exc}"
                logger.error("The job store cannot be opened (retrying in %.0f s): %s", _REOPEN_S, self.failure)
                self._closed.wait(_REOPEN_S)

    def _open_once(self) -> None:
        queued = threading.Event()  # the service sets it on a submission; idle workers wake on it
        service = JobService.open(self.settings, queued)
        runner = JobRunner(service.store, service.audio, self.settings, self.transcriber, queued)
        with self._lock:
            try:
                if self._closed.is_set():
                    raise RuntimeError("closed while opening")
                runner.start(run_jobs=self.settings.role == "all" and self.settings.job_concurrency != 0)
            except BaseException:
                service.close()
                raise
            self.service, self.runner, self.failure = service, runner, None
        logger.info("Job store open (%s)", type(service.store).__name__)

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            if self.runner is not None:
                self.runner.stop()
            if self.service is not None:
                self.service.close()
