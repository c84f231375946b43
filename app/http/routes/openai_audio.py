"""OpenAI's audio API: /v1/audio/transcriptions, /v1/audio/translations and /v1/models.

The same flow, pipeline and renderers as /transcribe; only the spelling of the fields and
the answers is OpenAI's, so the ``openai`` SDKs and the tools built on them work unchanged.
Errors under /v1 take OpenAI's shape (``app/http/error_handlers.py``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, Request, Response

from app.engine.options import Capabilities, TranscribeOptions
from app.engine.whisper_models import ModelStatus
from app.errors import InvalidParameter, ServiceError, Unsupported
from app.http.deps import PipelineDep, ServiceStateDep
from app.http.error_handlers import error_body
from app.http.routes.flow import ERROR_RESPONSES, FlowDep, Streaming, TranscriptionFlow
from app.http.streaming import EventStreamResponse, TranscriptStream
from app.http.upload import multipart_openapi
from app.serving.status import ServiceState
from app.transcript import Task, TextPiece, TokenLogprob
from app.wire.forms import OpenAITranscriptionParams, OpenAITranslationParams
from app.wire.openai_events import KEEP_ALIVE, STREAM_FORMATS, delta_event, error_event, final_events, sse
from app.wire.openai_schemas import (
    OPENAI_MODEL_ALIAS,
    ErrorResponse,
    ModelCard,
    ModelList,
    Transcription,
    TranscriptionDiarized,
    TranscriptionVerbose,
)
from app.wire.rendering import OPENAI_FORMATS, render

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

logger = logging.getLogger(__name__)

_OWNER = "transcription-service"
_RESPONSES = {
    **{status: {**answer, "model": ErrorResponse} for status, answer in ERROR_RESPONSES.items()},
    404: {"description": "`model` is none of GET /v1/models.", "model": ErrorResponse},
    200: {
        "description": "`json`, `verbose_json` or `diarized_json` as JSON; `text`, `srt` and `vtt` as text; "
        "with `stream=true`, server-sent events: `transcript.text.delta` as each window is decoded, "
        "`transcript.text.segment` (diarized_json) and `transcript.text.done` last.",
        "content": {"text/plain": {}, "application/x-subrip": {}, "text/vtt": {}, "text/event-stream": {}},
    },
}
_FILE = "Audio or video in any format ffmpeg reads (OpenAI's flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav, webm and more)."


@router.post(
    "/audio/transcriptions",
    response_model=Transcription | TranscriptionVerbose | TranscriptionDiarized,
    responses=_RESPONSES,
    openapi_extra=multipart_openapi(OpenAITranscriptionParams, _FILE),
)
async def create_transcription(request: Request, flow: FlowDep) -> Response:
    return await _run(request, flow, OpenAITranscriptionParams, "transcribe")


@router.post(
    "/audio/translations",
    response_model=Transcription | TranscriptionVerbose,
    responses=_RESPONSES,
    openapi_extra=multipart_openapi(OpenAITranslationParams, _FILE),
)
async def create_translation(request: Request, flow: FlowDep) -> Response:
    return await _run(request, flow, OpenAITranslationParams, "translate")


async def _run(
    request: Request, flow: TranscriptionFlow, form: type[OpenAITranscriptionParams], task: Task
) -> Response:
    options_of = _options_of(flow.transcriber.pipeline().capabilities, task)
    params, answer = await flow.answer(request, form, options_of, _streaming)
    if isinstance(answer, TranscriptStream):
        return EventStreamResponse(_events(answer, params, request.url.path), answer.aclose)
    rendered = render(answer, OPENAI_FORMATS[params.response_format], granularities=params.timestamp_granularities)
    return Response(rendered.body, media_type=rendered.media_type)


def _streaming(params: OpenAITranscriptionParams) -> Streaming | None:
    return Streaming(logprobs="logprobs" in params.include) if params.stream else None


async def _events(stream: TranscriptStream, params: OpenAITranscriptionParams, path: str) -> AsyncIterator[bytes]:
    """The stream's pieces as OpenAI's events; a failure becomes one error event (the SDKs raise it)."""
    logprobs: list[TokenLogprob] | None = [] if "logprobs" in params.include else None
    try:
        async for item in stream:
            if item is None:
                yield KEEP_ALIVE
            elif isinstance(item, TextPiece):
                if logprobs is not None and item.logprobs is not None:
                    logprobs.extend(item.logprobs)
                yield sse(delta_event(item))
            else:
                for event in final_events(item, params.response_format, logprobs):
                    yield sse(event)
    except ServiceError as exc:
        yield sse(error_event(error_body(path, exc.status_code, exc.code, exc.message, param=exc.param)))
    except Exception:
        logger.exception("A streaming transcription failed")
        yield sse(error_event(error_body(path, 500, "internal_error", "The server failed to process this request.")))


@router.get("/models", response_model=ModelList)
def list_models(pipeline: PipelineDep, state: ServiceStateDep) -> ModelList:
    """Every model a request may name, with its state (loaded, loading, unloaded), and `whisper-1` (the default)."""
    statuses = pipeline.models.statuses()
    default = next(s for s in statuses if s.default)
    return ModelList(data=[*(_card(s.id, s, state) for s in statuses), _card(OPENAI_MODEL_ALIAS, default, state)])


@router.get("/models/{model_id:path}", response_model=ModelCard, responses={404: {"model": ErrorResponse}})
def get_model(model_id: str, pipeline: PipelineDep, state: ServiceStateDep) -> ModelCard:
    named = pipeline.models.id_of(model_id)
    return _card(model_id, next(s for s in pipeline.models.statuses() if s.id == named), state)


def _options_of(can: Capabilities, task: Task) -> Callable[[OpenAITranscriptionParams], TranscribeOptions]:
    def options_of(params: OpenAITranscriptionParams) -> TranscribeOptions:
        if params.stream and task == "translate":
            raise Unsupported(
                "stream=true is for transcriptions: a translation comes whole. Send stream=false (the default).",
                param="stream",
            )
        if params.stream and params.response_format not in STREAM_FORMATS:
            raise InvalidParameter(
                f"stream=true sends OpenAI's transcript.text events, which end in json, text or diarized_json; "
                f"response_format {params.response_format} comes whole: send stream=false for it.",
                param="response_format",
            )
        if params.include and not params.stream:
            raise InvalidParameter(
                "include[]=logprobs gives each token's log-probability with the streamed text: send stream=true.",
                param="include",
            )
        if params.response_format == "diarized_json" and not can.diarizer:
            raise InvalidParameter(
                f"response_format diarized_json needs diarization, which is unavailable here: "
                f"{can.diarizer_unavailable or 'ENABLE_DIARIZATION=false'}.",
                param="response_format",
            )
        return params.options(task)

    return options_of


def _card(model_id: str, model: ModelStatus, state: ServiceState) -> ModelCard:
    return ModelCard.of(model, model_id, created=int(state.ready_at or 0), owned_by=_OWNER)
