"""POST /transcribe: admit → upload → waveform → pipeline → JSON or subtitles.

The route is ``async`` only to read the body itself, after admission (``app/upload.py``);
decoding and model work run in the threadpool (``run_in_threadpool``), so they never block
the event loop and ``/health`` keeps answering. While they run, the route watches the
connection: a client that leaves cancels its request at the next stage or batch boundary.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from app.config import Settings
from app.deps import BudgetsDep, GateDep, PipelineDep, RegistryDep, SettingsDep
from app.errors import InvalidParameter
from app.schemas import (
    DiarizationOut,
    SegmentOut,
    SpeakerOut,
    SpeakerTurnOut,
    TranscribeParams,
    TranscriptionResponse,
    WordOut,
)
from app.services.audio import decode_audio
from app.services.budget import Budgets
from app.services.cancellation import CancelToken
from app.services.diarization import SpeakerHints
from app.services.formats import MEDIA_TYPES, RENDERERS
from app.services.pipeline import TranscribeOptions, Transcript, TranscriptionPipeline
from app.upload import Upload, UploadLimits, multipart_openapi, parse_fields, receive_upload

logger = logging.getLogger(__name__)
router = APIRouter(tags=["transcription"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "No file, an empty file, or a malformed request."},
    408: {"description": "The upload stalled or arrived slower than UPLOAD_MIN_RATE_KIB_S."},
    413: {"description": "The upload or the decoded audio is over the configured limit."},
    415: {"description": "The file could not be decoded as audio."},
    422: {"description": "A parameter is invalid or contradicts another."},
    503: {"description": "Loading, shutting down, or over capacity (see Retry-After)."},
}


@router.post(
    "/transcribe",
    response_model=TranscriptionResponse,
    responses=_ERRORS,
    openapi_extra=multipart_openapi(TranscribeParams, "Audio or video in any format ffmpeg reads."),
)
async def transcribe(
    request: Request,
    settings: SettingsDep,
    registry: RegistryDep,
    gate: GateDep,
    budgets: BudgetsDep,
    pipeline: PipelineDep,
) -> Response:
    with gate.admit() as cancel:  # before a byte of the body is read
        async with receive_upload(request, upload_limits(settings, budgets)) as upload:
            params = parse_fields(TranscribeParams, upload.fields)
            options = _options(params, settings.batch_size, settings.max_batch_size)
            pipeline.check(options)
            transcript = await run_watching_client(
                request, cancel, _decode_and_run, pipeline, upload, options, settings, budgets, cancel
            )

    if params.output != "json":
        body = RENDERERS[params.output](transcript.segments)
        return Response(body, media_type=MEDIA_TYPES[params.output])
    response = _to_response(transcript, model=pipeline.model_name, diarization_device=registry.diarization_device)
    return JSONResponse(response.model_dump())


def upload_limits(settings: Settings, budgets: Budgets) -> UploadLimits:
    return UploadLimits(
        max_bytes=settings.max_upload_bytes,
        max_mb=settings.max_upload_mb,
        temp_dir=settings.temp_dir,
        disk=budgets.disk,
        min_rate_bytes_s=settings.upload_min_rate_kib_s * 1024,
        stall_timeout_s=settings.upload_stall_timeout_s,
    )


def _decode_and_run(
    pipeline: TranscriptionPipeline,
    upload: Upload,
    options: TranscribeOptions,
    settings: Settings,
    budgets: Budgets,
    cancel: CancelToken,
) -> Transcript:
    started = time.perf_counter()
    with budgets.memory.reservation() as memory:
        audio = decode_audio(
            upload.path,
            timeout_s=settings.decode_timeout_s,
            max_seconds=settings.max_audio_seconds,
            memory=memory,
            ffmpeg=settings.ffmpeg_binary,
        )
        decode_s = round(time.perf_counter() - started, 4)
        transcript = pipeline.run(audio, options, cancel)
    transcript.timings["decode"] = decode_s
    return transcript


async def run_watching_client(request: Request, cancel: CancelToken, work: Any, *args: Any) -> Any:
    """Run ``work`` in the threadpool; stop waiting for it once it is cancelled.

    A client that disconnects cancels the work. Cancelled work (client gone, or the drain's
    grace over) stops at its next stage or batch boundary; the answer does not wait for that
    boundary, so a shutdown answers every request with its 503 in time even while a long,
    uninterruptible stage (VAD of an hour on a CPU) finishes in the background.
    """
    job = asyncio.ensure_future(run_in_threadpool(work, *args))
    job.add_done_callback(_retrieve)
    watchers = {asyncio.ensure_future(_disconnected(request)), asyncio.ensure_future(_cancelled(cancel))}
    try:
        done, _ = await asyncio.wait({job, *watchers}, return_when=asyncio.FIRST_COMPLETED)
        if job in done:
            return job.result()
        if not cancel.cancelled:
            cancel.cancel("the client disconnected")
            logger.info("Client disconnected from %s: its transcription stops at the next boundary", request.url.path)
        raise cancel.error()  # 503 (or nothing, to a client that left)
    finally:
        for watcher in watchers:
            watcher.cancel()


async def _cancelled(cancel: CancelToken) -> None:
    while not cancel.cancelled:
        await asyncio.sleep(0.1)


def _retrieve(job: asyncio.Future[Any]) -> None:
    """Consume the result of work nobody waits for any more (so asyncio does not log it)."""
    if not job.cancelled():
        job.exception()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _options(params: TranscribeParams, default_batch: int, max_batch: int) -> TranscribeOptions:
    batch_size = params.batch_size or default_batch
    if batch_size > max_batch:
        raise InvalidParameter(f"batch_size {batch_size} exceeds this server's limit of {max_batch}.")
    diarize = params.diarize
    if diarize is None and params.has_speaker_hints:
        diarize = True
    elif diarize is None and not params.word_timestamps:
        diarize = False  # speakers are assigned word by word
    return TranscribeOptions(
        language=params.language,
        task=params.task,
        diarize=diarize,
        hints=SpeakerHints(params.num_speakers, params.min_speakers, params.max_speakers),
        initial_prompt=params.initial_prompt,
        batch_size=batch_size,
        word_timestamps=params.word_timestamps,
    )


def _to_response(transcript: Transcript, *, model: str, diarization_device: str | None) -> TranscriptionResponse:
    segments = [
        SegmentOut(
            start=s.start,
            end=s.end,
            text=s.text,
            speaker=s.speaker,
            avg_logprob=s.avg_logprob,
            words=[WordOut(**vars(w)) for w in s.words],
        )
        for s in transcript.segments
    ]
    speaking_time: dict[str, float] = {}
    for turn in transcript.turns:
        speaking_time[turn.speaker] = speaking_time.get(turn.speaker, 0.0) + turn.end - turn.start
    speakers = {
        label: SpeakerOut(
            duration=round(seconds, 3), segments=sum(1 for s in transcript.segments if s.speaker == label)
        )
        for label, seconds in speaking_time.items()
    }
    report = transcript.diarization
    return TranscriptionResponse(
        text=" ".join(s.text for s in transcript.segments),
        language=transcript.language,
        language_probability=transcript.language_probability,
        duration=round(transcript.duration, 3),
        model=model,
        segments=segments,
        word_segments=[w for s in segments for w in s.words],
        speakers=speakers,
        num_speakers=len(speakers),
        diarization_device=report.device if report.performed else diarization_device,
        diarization=DiarizationOut(
            requested=report.requested,
            performed=report.performed,
            diarizer=report.diarizer,
            detail=report.detail,
            turns=[
                SpeakerTurnOut(start=round(t.start, 3), end=round(t.end, 3), speaker=t.speaker)
                for t in transcript.turns
            ],
        ),
        word_timestamps_method=transcript.word_time_source,
        timings=transcript.timings,
        warnings=transcript.warnings,
    )
