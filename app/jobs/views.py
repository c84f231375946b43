"""A stored job as clients see it: the API's JSON and the webhook's body."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from app.jobs.records import JobRecord, JobState
from app.transcript import Transcript, load_transcript
from app.wire.rendering import transcript_json
from app.wire.schemas import JobOut, JobProgressOut, JobWebhookOut

logger = logging.getLogger(__name__)


def stored_transcript(job: JobRecord) -> Transcript | None:
    """The job's transcript; None before it succeeded (or when its stored result is corrupt)."""
    if job.state is not JobState.SUCCEEDED or job.result is None:
        return None
    try:
        return load_transcript(job.result)
    except ValueError:
        logger.error("Job %s: its stored result does not parse", job.id)
        return None


def job_out(job: JobRecord, *, with_result: bool = False) -> JobOut:
    transcript = stored_transcript(job) if job.state is JobState.SUCCEEDED else None
    state, error = job.state, job.error
    if job.state is JobState.SUCCEEDED and transcript is None:
        state, error = JobState.FAILED, "The job's stored result is corrupt."
    return JobOut(
        id=job.id,
        state=state.value,
        created_at=_iso(job.created_at) or "",
        started_at=_iso(job.started_at),
        finished_at=_iso(job.finished_at),
        filename=job.filename,
        audio_bytes=job.audio_bytes,
        attempts=job.attempts,
        worker=job.lease_owner,
        cache_hit=job.cache_hit,
        progress=_progress(job.progress),
        error=error,
        webhook=JobWebhookOut(state=job.webhook_state, attempts=job.webhook_attempts, error=job.webhook_error)  # type: ignore[arg-type]
        if job.callback_url
        else None,
        result=transcript_json(transcript) if with_result and transcript is not None else None,
    )


def webhook_body(job: JobRecord) -> dict[str, Any]:
    """What a callback receives: the job's summary (no transcript: fetch it by id)."""
    body = job_out(job).model_dump(exclude={"result", "webhook"})
    body["type"] = f"job.{job.state.value}"
    body["url"] = f"/v1/jobs/{job.id}"
    return body


def _progress(stored: dict[str, Any]) -> JobProgressOut:
    try:
        return JobProgressOut.model_validate(stored)
    except ValueError:
        return JobProgressOut()


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
