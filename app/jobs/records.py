"""A job as the store keeps it: one row, with its lifecycle's states."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class NewJob:
    """What a submission stores: the request, and the facts the cache and retries need."""

    id: str
    params: dict[str, Any]  # the transcription options, versioned (app/jobs/options.py)
    request_key: str  # the audio's and the options' digest: what a replayed Idempotency-Key must match
    audio_sha256: str
    audio_bytes: int
    tenant: str = ""  # the submitting tenant's id (app/jobs/keys.py); "" without API_KEYS
    filename: str | None = None
    idempotency_key: str | None = None
    callback_url: str | None = None


@dataclass
class JobRecord:
    id: str
    state: JobState
    created_at: float
    updated_at: float
    params: dict[str, Any]
    request_key: str
    audio_sha256: str
    audio_bytes: int
    tenant: str = ""
    result_key: str | None = None  # set with the result: later jobs with the same key reuse it
    filename: str | None = None
    idempotency_key: str | None = None
    callback_url: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    lease_owner: str | None = None
    lease_expires: float | None = None
    progress: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    result: str | None = None  # the transcript, as JSON (``app/jobs/results.py``)
    cache_hit: bool = False
    webhook_state: str | None = None  # pending, delivered, failed; None without callback_url
    webhook_attempts: int = 0
    webhook_next_at: float | None = None
    webhook_error: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobRecord:
        """A row as the database returns it; a column that does not parse leaves a failed job."""
        values = dict(row)
        problems: list[str] = []
        for column in ("params", "progress"):
            raw = values.get(column)
            try:
                values[column] = json.loads(raw) if raw else {}
                if not isinstance(values[column], dict):
                    raise ValueError(f"{column} is not an object")
            except ValueError:
                values[column] = {}
                problems.append(column)
        try:
            values["state"] = JobState(values["state"])
        except ValueError:
            problems.append("state")
            values["state"] = JobState.FAILED
        values["cache_hit"] = bool(values.get("cache_hit"))
        record = cls(**{k: v for k, v in values.items() if k in _FIELDS})
        if problems:
            record.state = JobState.FAILED
            record.error = f"The job's stored record is corrupt ({', '.join(problems)})."
        return record


_FIELDS = frozenset(JobRecord.__dataclass_fields__)
