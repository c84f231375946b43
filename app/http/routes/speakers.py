"""The voice book: POST/GET/DELETE /v1/speakers — a tenant's named reference clips.

A stored voice is used by naming it in ``known_speaker_names[]`` without a clip of its own
(the clips sent pair with the first names; names past them come from the book). Voices are
per tenant, as jobs are: another tenant's voice is a 404 like one that never existed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.engine.options import SpeakerName
from app.engine.speakers.references import decode_reference_file, wav_data_url
from app.errors import ServiceError
from app.http.deps import BudgetsDep, JobsDep, JobTenantDep, SettingsDep
from app.http.routes.flow import upload_limits
from app.http.upload import multipart_openapi, parse_fields, receive_upload
from app.jobs.voices import MAX_VOICES, Voice
from app.wire.schemas import VoiceList, VoiceOut

router = APIRouter(prefix="/v1/speakers", tags=["speakers"])

_MAX_CLIP_BYTES = 5 * 2**20  # 10 s of 48 kHz stereo WAV is under 2 MB
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No voice of that name in this key's voice book."}}


class VoiceNotFound(ServiceError):
    status_code = 404
    code = "voice_not_found"


class VoiceBookFull(ServiceError):
    """A full book stays full until its owner deletes a voice: a 409, never a 503 to retry."""

    status_code = 409
    code = "voice_book_full"


class VoiceParams(BaseModel):
    """The fields of POST /v1/speakers besides the clip (`file`)."""

    name: SpeakerName = Field(
        description="The voice's name, as `known_speaker_names[]` will name it (a stored name is replaced)."
    )


@router.post(
    "",
    status_code=201,
    response_model=VoiceOut,
    responses={
        400: {"description": "No clip, or a malformed request."},
        413: {"description": "The clip is over 5 MB."},
        409: {"description": f"The voice book is full ({MAX_VOICES} voices): delete one first."},
        422: {
            "description": "The name is empty or holds a character names may not, or the clip is not 2–10 s of audio."
        },
        503: {"description": "The job store is not open."},
    },
    openapi_extra=multipart_openapi(VoiceParams, "2–10 s of this voice alone, in any format ffmpeg reads."),
)
async def store_voice(
    request: Request, tenant_id: JobTenantDep, jobs: JobsDep, settings: SettingsDep, budgets: BudgetsDep
) -> JSONResponse:
    limits = dataclasses.replace(upload_limits(settings, budgets), max_bytes=_MAX_CLIP_BYTES, max_mb=5)
    async with receive_upload(request, limits) as upload:
        params = parse_fields(VoiceParams, upload.fields)
        which = f"The clip for {params.name!r}"
        audio = await run_in_threadpool(
            decode_reference_file,
            upload.path,
            which,
            "file",
            timeout_s=min(settings.decode_timeout_s, 30.0),
            ffmpeg=settings.ffmpeg_binary,
        )
    seconds = audio.shape[0] / 16_000
    voice = await run_in_threadpool(jobs.voices.put, tenant_id, params.name, wav_data_url(audio), seconds)
    if voice is None:
        raise VoiceBookFull(
            f"This voice book holds {MAX_VOICES} voices, the most a key may store: delete one "
            "(DELETE /v1/speakers/{name}) before storing another."
        )
    return JSONResponse(_out(voice).model_dump(), status_code=201)


@router.get("", response_model=VoiceList)
async def list_voices(tenant_id: JobTenantDep, jobs: JobsDep) -> VoiceList:
    return VoiceList(data=[_out(v) for v in await run_in_threadpool(jobs.voices.voices, tenant_id)])


# {name:path}: a name stored before names were checked may hold "/" (a%2Fb), and must stay reachable.
@router.get("/{name:path}", response_model=VoiceOut, responses=_NOT_FOUND)
async def get_voice(name: str, tenant_id: JobTenantDep, jobs: JobsDep) -> VoiceOut:
    voice = await run_in_threadpool(jobs.voices.voice, tenant_id, name)
    if voice is None:
        raise VoiceNotFound(f"No voice called {name!r} in this voice book.")
    return _out(voice)


@router.delete("/{name:path}", status_code=204, responses=_NOT_FOUND)
async def delete_voice(name: str, tenant_id: JobTenantDep, jobs: JobsDep) -> Response:
    if not await run_in_threadpool(jobs.voices.delete, tenant_id, name):
        raise VoiceNotFound(f"No voice called {name!r} in this voice book.")
    return Response(status_code=204)


def _out(voice: Voice) -> VoiceOut:
    return VoiceOut(name=voice.name, seconds=voice.seconds, created_at=voice.created_at)
