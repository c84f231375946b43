"""POST /transcribe: the service's own API (form fields in, our JSON or subtitles out)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.http.routes.flow import ERROR_RESPONSES, FlowDep
from app.http.upload import multipart_openapi
from app.wire.forms import TranscribeParams
from app.wire.rendering import FORMATS, OUTPUT_FORMATS, documented_media_types, render
from app.wire.schemas import TranscriptionResponse

router = APIRouter(tags=["transcription"])


@router.post(
    "/transcribe",
    response_model=TranscriptionResponse,
    responses={
        **ERROR_RESPONSES,
        200: {
            "description": "The transcript as `output` asks: our JSON, or subtitles and text.",
            "content": documented_media_types([FORMATS[name] for name in OUTPUT_FORMATS.values()]),
        },
    },
    openapi_extra=multipart_openapi(TranscribeParams, "Audio or video in any format ffmpeg reads."),
)
async def transcribe(request: Request, flow: FlowDep) -> Response:
    params, transcript = await flow(request, TranscribeParams, TranscribeParams.options)
    rendered = render(transcript, OUTPUT_FORMATS[params.output])
    return Response(rendered.body, media_type=rendered.media_type)
