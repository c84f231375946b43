"""The journey every transcription route shares: admit → upload → options → waveform → pipeline.

Routes are ``async`` only to read the body themselves, after admission (``app/http/upload.py``);
decoding and model work run in the threadpool (``run_in_threadpool``), so they never block
the event loop and ``/health`` keeps answering. While they run, the route watches the
connection: a client that leaves cancels its request at the next stage or batch boundary.
Each route brings its own form model and its own way from those fields to the options.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from app.config import Settings
from app.control.budget import Budgets
from app.control.cancellation import CancelToken
from app.engine.options import TranscribeOptions
from app.http.access_log import route_of
from app.http.auth import CurrentTenant
from app.http.deps import SettingsDep, TranscriberDep
from app.http.streaming import TextFeed, TranscriptStream
from app.http.upload import UploadLimits, parse_fields, receive_upload
from app.serving.transcriber import Transcriber
from app.transcript import Transcript

logger = logging.getLogger(__name__)

Params = TypeVar("Params", bound=BaseModel)
T = TypeVar("T")

# The answers every transcription route can give besides its result (OpenAPI).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "No file, an empty file, or a malformed request."},
    401: {"description": "API_KEYS is set and the request has no valid `Authorization: Bearer` key."},
    404: {"description": "`model` is none of the models this server serves (GET /v1/models)."},
    408: {"description": "The upload stalled or arrived slower than UPLOAD_MIN_RATE_KIB_S."},
    413: {"description": "The upload or the decoded audio is over the configured limit."},
    415: {"description": "The file could not be decoded as audio."},
    422: {"description": "A parameter is invalid or contradicts another."},
    503: {"description": "Loading, shutting down, or over capacity (see Retry-After)."},
}


@dataclass(frozen=True)
class TranscriptionFlow:
    """What a transcription route needs from the app, as one dependency."""

    settings: Settings
    transcriber: Transcriber
    # The request's tenant's stored voices (name → clip) among the names asked (the voice book).
    stored_voices: Callable[[list[str]], dict[str, str]] = lambda _: {}

    async def __call__(
        self, request: Request, form: type[Params], options_of: Callable[[Params], TranscribeOptions]
    ) -> tuple[Params, Transcript]:
        """Admit, read the upload, parse ``form``, resolve its options, decode and transcribe.

        ``options_of`` turns the parsed form into options (and may refuse it); the transcriber
        then decides the defaults and checks them, before any audio is decoded.
        """
        params, answer = await self.answer(request, form, options_of, lambda _: None)
        assert isinstance(answer, Transcript)
        return params, answer

    async def answer(
        self,
        request: Request,
        form: type[Params],
        options_of: Callable[[Params], TranscribeOptions],
        streaming: Callable[[Params], Streaming | None],
    ) -> tuple[Params, Transcript | TranscriptStream]:
        """As ``__call__``; but when ``streaming`` says so for the parsed form, the answer is a
        ``TranscriptStream`` instead of the transcript: everything that can refuse the request
        (a file that is not audio or too long included) has happened by then, so refusals keep
        their usual status; the stream begins once the audio is decoded and holds the admission
        slot and the upload until closed.
        """
        transcriber = self.transcriber
        resources = AsyncExitStack()
        try:
            cancel = resources.enter_context(transcriber.gate.admit())  # before a byte of the body is read
            upload = await resources.enter_async_context(
                receive_upload(request, upload_limits(self.settings, transcriber.budgets))
            )
            params = parse_fields(form, upload.fields)
            asked = options_of(params)
            if asked.names_without_clips:
                asked = asked.with_stored_clips(await run_in_threadpool(self.stored_voices, asked.names_without_clips))
            options = transcriber.resolve(asked)
            stream = streaming(params)
            if stream is None:
                work = partial(transcriber.transcribe_file, upload.path, options, cancel)
                transcript = await run_watching_client(request, cancel, work)
                await resources.aclose()
                return params, transcript
            feed = TextFeed(asyncio.get_running_loop(), logprobs=stream.logprobs)
            work = partial(transcriber.transcribe_file, upload.path, options, cancel, feed.progress, feed)
            job = asyncio.ensure_future(run_in_threadpool(work))
            job.add_done_callback(_retrieve)
            answer = TranscriptStream(resources, job, feed, cancel)
            await watch_client(request, cancel, answer.wait_started())
            return params, answer
        except BaseException:
            await resources.aclose()
            raise


@dataclass(frozen=True)
class Streaming:
    """A request that asked for its text as it is decoded."""

    logprobs: bool  # each token's log-probability with its text


def get_flow(
    request: Request, settings: SettingsDep, transcriber: TranscriberDep, tenant: CurrentTenant
) -> TranscriptionFlow:
    transcriber.pipeline()  # loading, failed or API-only: 503 before the upload is read
    return TranscriptionFlow(settings, transcriber, partial(request.app.state.jobs.stored_voices, tenant.identity))


FlowDep = Annotated[TranscriptionFlow, Depends(get_flow)]


def upload_limits(settings: Settings, budgets: Budgets) -> UploadLimits:
    return UploadLimits(
        max_bytes=settings.max_upload_bytes,
        max_mb=settings.max_upload_mb,
        temp_dir=settings.temp_dir,
        disk=budgets.disk,
        min_rate_bytes_s=settings.upload_min_rate_kib_s * 1024,
        stall_timeout_s=settings.upload_stall_timeout_s,
    )


async def run_watching_client(request: Request, cancel: CancelToken, work: Callable[[], T]) -> T:
    """Run ``work`` in the threadpool, watching the client (``watch_client``)."""
    return await watch_client(request, cancel, run_in_threadpool(work))


async def watch_client(request: Request, cancel: CancelToken, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable``; stop waiting for it once it is cancelled.

    A client that disconnects cancels the work. Cancelled work (client gone, or the drain's
    grace over) stops at its next stage or batch boundary; the answer does not wait for that
    boundary, so a shutdown answers every request with its 503 in time even while a long,
    uninterruptible stage (VAD of an hour on a CPU) finishes in the background.
    """
    job = asyncio.ensure_future(awaitable)
    job.add_done_callback(_retrieve)
    watchers = {asyncio.ensure_future(_disconnected(request)), asyncio.ensure_future(cancel.until_cancelled())}
    try:
        done, _ = await asyncio.wait({job, *watchers}, return_when=asyncio.FIRST_COMPLETED)
        if job in done:
            return job.result()
        if not cancel.cancelled:
            cancel.cancel("the client disconnected")
            logger.info(
                "Client disconnected from %s: its transcription stops at the next boundary", route_of(request.scope)
            )
        raise cancel.error()  # 503 (or nothing, to a client that left)
    finally:
        for watcher in watchers:
            watcher.cancel()


def _retrieve(job: asyncio.Future[Any]) -> None:
    """Consume the result of work nobody waits for any more (so asyncio does not log it)."""
    if not job.cancelled():
        job.exception()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
