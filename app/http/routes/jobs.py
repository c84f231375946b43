"""Jobs: POST /v1/jobs (202 + Location), GET /v1/jobs/{id}, its events (SSE), DELETE to cancel.

A long file behind a proxy with a 100-second timeout cannot be a synchronous request: a job
is stored durably, runs on whichever worker claims it (this process, or a GPU worker of a
scale-out), and is read back by id, in any output format, for the retention period.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from app.config import Settings
from app.engine.audio import check_decodable
from app.engine.options import require_clips
from app.errors import Conflict, InvalidParameter, JobNotFound
from app.http.auth import CurrentTenant
from app.http.deps import BudgetsDep, GateDep, JobsDep, JobTenantDep, SettingsDep, TranscriberDep
from app.http.routes.flow import ERROR_RESPONSES, upload_limits
from app.http.upload import multipart_openapi, parse_fields, receive_upload
from app.jobs.records import JobRecord
from app.jobs.views import job_out, stored_transcript
from app.jobs.webhooks import WebhookPolicy, WebhookRefused
from app.wire.forms import JobParams
from app.wire.rendering import FORMATS, OUTPUT_FORMATS, OutputFormat, documented_media_types, render
from app.wire.schemas import JobOut

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
logger = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_ID_LENGTH = 64  # ids are 32 hex digits; longer ones are not looked up
_EVENT_POLL_S = 0.25
_EVENT_KEEPALIVE_S = 15.0  # a comment line, so proxies do not close a quiet stream


IdempotencyKey = Annotated[
    str | None,
    Header(max_length=255, description="A retried submission with the same key returns the same job."),
]


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses={
        **ERROR_RESPONSES,
        200: {"model": JobOut, "description": "A retry with the same Idempotency-Key: the job it created before."},
        409: {"description": "The Idempotency-Key was used for another request."},
    },
    openapi_extra=multipart_openapi(JobParams, "Audio or video in any format ffmpeg reads."),
)
async def submit_job(
    request: Request,
    tenant: CurrentTenant,
    tenant_id: JobTenantDep,
    jobs: JobsDep,
    settings: SettingsDep,
    gate: GateDep,
    budgets: BudgetsDep,
    transcriber: TranscriberDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    with gate.admit():  # uploads in flight count against the same capacity as transcriptions
        async with receive_upload(request, upload_limits(settings, budgets)) as upload:
            params = parse_fields(JobParams, upload.fields)
            options = params.options()
            if missing := options.names_without_clips:
                options = options.with_stored_clips(await run_in_threadpool(jobs.voices.clips, tenant_id, missing))
            require_clips(options)
            callback_url = params.callback_url
            if callback_url is not None:
                await run_in_threadpool(_check_callback, callback_url, settings)
            pipeline = transcriber.loaded_pipeline()
            if pipeline is not None:
                pipeline.resolve(options)  # refuse what the models cannot do, now
            await run_in_threadpool(transcriber.known_speakers, options)  # bad reference clips: a 422 now
            # Not audio at all, or longer than the limit by its header: refused now, not as a failed job later.
            await run_in_threadpool(
                check_decodable,
                upload.path,
                timeout_s=min(settings.decode_timeout_s, 30.0),
                max_seconds=settings.max_audio_seconds,
                ffmpeg=settings.ffmpeg_binary,
            )
            job, replayed = await run_in_threadpool(
                jobs.submit,
                upload.path,
                tenant=tenant_id,
                options=options,
                local=pipeline,
                filename=upload.filename,
                idempotency_key=idempotency_key,
                callback_url=callback_url,
            )
    logger.info("Job %s %s by tenant %s", job.id, "replayed" if replayed else "submitted", tenant.name)
    headers = {"Location": f"/v1/jobs/{job.id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    status = 200 if replayed else 202
    return JSONResponse(job_out(job, with_result=True).model_dump(), status_code=status, headers=headers)


@router.get(
    "/{job_id}",
    response_model=JobOut,
    responses={
        200: {
            "description": "`json`: the job, with its result once it succeeded; another `format`: the transcript.",
            "content": documented_media_types([FORMATS[name] for name in OUTPUT_FORMATS.values()]),
        },
        404: {"description": "No such job (or it expired)."},
        409: {"description": "A transcript format was asked of a job that has no transcript (yet)."},
    },
)
async def get_job(
    job_id: str,
    tenant_id: JobTenantDep,
    jobs: JobsDep,
    format: Annotated[
        OutputFormat, Query(description="`json`: the job with its result; others: the transcript itself.")
    ] = "json",
) -> Response:
    job = await _job(jobs, job_id, tenant_id)
    if format == "json":
        return JSONResponse(job_out(job, with_result=True).model_dump())
    transcript = stored_transcript(job)
    if transcript is None:
        raise Conflict(f"Job {job_id} is {job.state.value}: it has no transcript to render as {format}.")
    rendered = render(transcript, OUTPUT_FORMATS[format])
    return Response(rendered.body, media_type=rendered.media_type)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses={404: {"description": "No such job (or it expired)."}, 409: {"description": "The job already ended."}},
)
async def cancel_job(job_id: str, tenant_id: JobTenantDep, jobs: JobsDep) -> JSONResponse:
    """Stop a queued or running job; it stays readable, `cancelled`, for the retention period."""
    cancelled = await _in_store(jobs.cancel, job_id, tenant_id)
    if cancelled is None:
        job = await _job(jobs, job_id, tenant_id)
        raise Conflict(f"Job {job_id} already ended ({job.state.value}); there is nothing to cancel.")
    return JSONResponse(job_out(cancelled).model_dump())


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    responses={404: {"description": "No such job (or it expired)."}},
)
async def delete_job(job_id: str, tenant: CurrentTenant, tenant_id: JobTenantDep, jobs: JobsDep) -> Response:
    """Erase the job now, with its transcript and its audio (a running job is stopped first)."""
    if not await _in_store(jobs.delete, job_id, tenant_id):
        raise _not_found(job_id)
    logger.info("Job %s deleted by tenant %s", job_id, tenant.name)
    return Response(status_code=204)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "`progress` events, then one `end`."},
        404: {"description": "No such job (or it expired)."},
    },
)
async def job_events(job_id: str, tenant_id: JobTenantDep, jobs: JobsDep) -> StreamingResponse:
    """Server-sent events: the job (as GET gives it, without the result) whenever it changes,
    as ``progress`` events, and a last ``end`` event when it succeeded, failed or was cancelled."""
    job = await _job(jobs, job_id, tenant_id)
    return StreamingResponse(
        _events(jobs, job),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(jobs: JobsDep, job: JobRecord) -> AsyncIterator[str]:
    last_change: float | None = None
    quiet_since = asyncio.get_running_loop().time()
    while True:
        if job.updated_at != last_change:
            last_change = job.updated_at
            quiet_since = asyncio.get_running_loop().time()
            kind: Literal["progress", "end"] = "end" if job.state.finished else "progress"
            yield _event(kind, job_out(job).model_dump_json())
            if kind == "end":
                return
        elif asyncio.get_running_loop().time() - quiet_since > _EVENT_KEEPALIVE_S:
            quiet_since = asyncio.get_running_loop().time()
            yield ": keep-alive\n\n"
        await asyncio.sleep(_EVENT_POLL_S)
        current = await run_in_threadpool(jobs.get, job.id, job.tenant)
        if current is None:  # expired or deleted while watched
            yield _event("end", json.dumps({"id": job.id, "state": "expired"}))
            return
        job = current


def _event(kind: str, data: str) -> str:
    return f"event: {kind}\ndata: {data}\n\n"


async def _in_store(call: Callable[[str, str], T], job_id: str, tenant_id: str) -> T | None:
    """``call(job_id, tenant_id)`` on the store, off the event loop; None for an id too long to be one."""
    return await run_in_threadpool(call, job_id, tenant_id) if len(job_id) <= _MAX_ID_LENGTH else None


async def _job(jobs: JobsDep, job_id: str, tenant_id: str) -> JobRecord:
    """The tenant's job; another tenant's answers exactly as an id that never existed."""
    job = await _in_store(jobs.get, job_id, tenant_id)
    if job is None:
        raise _not_found(job_id)
    return job


def _not_found(job_id: str) -> JobNotFound:
    """The one answer for a job this tenant cannot see: never existed, expired, deleted, or another's."""
    return JobNotFound(f"No job {job_id!r}: it never existed, or it expired.")


def _check_callback(url: str, settings: Settings) -> None:
    if settings.webhook_secret is None:
        raise InvalidParameter(
            "callback_url was given, but this server has no WEBHOOK_SECRET to sign webhooks with.",
            param="callback_url",
        )
    try:
        WebhookPolicy.from_settings(settings).check_destination(url)  # delivery checks again: DNS can change
    except WebhookRefused as exc:
        raise InvalidParameter(str(exc), param="callback_url") from None
