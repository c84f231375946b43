"""POST /transcribe: upload → waveform → pipeline → JSON or subtitles.

A plain ``def``: FastAPI runs it in its threadpool, so decoding and model work never block
the event loop (and ``/health`` keeps answering).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse, Response

from app.deps import GateDep, PipelineDep, RegistryDep, SettingsDep
from app.errors import InvalidParameter, MissingFile
from app.schemas import (
    DiarizationOut,
    SegmentOut,
    SpeakerOut,
    SpeakerTurnOut,
    TranscribeParams,
    TranscriptionResponse,
    WordOut,
)
from app.services.audio import decode_audio, upload_on_disk
from app.services.diarization import SpeakerHints
from app.services.formats import MEDIA_TYPES, RENDERERS
from app.services.pipeline import TranscribeOptions, Transcript

router = APIRouter(tags=["transcription"])

_ERRORS = {
    400: {"description": "No file, an empty file, or a malformed request."},
    413: {"description": "The upload or the decoded audio is over the configured limit."},
    415: {"description": "The file could not be decoded as audio."},
    422: {"description": "A parameter is invalid or contradicts another."},
    503: {"description": "Still loading, or too many transcriptions in flight (see Retry-After)."},
}


@router.post("/transcribe", response_model=TranscriptionResponse, responses=_ERRORS)  # type: ignore[arg-type]
def transcribe(
    settings: SettingsDep,
    registry: RegistryDep,
    gate: GateDep,
    pipeline: PipelineDep,
    params: Annotated[TranscribeParams, Form()],
    file: Annotated[UploadFile | None, File(description="Audio or video in any format ffmpeg reads.")] = None,
) -> Response:
    if file is None:
        raise MissingFile("No file was uploaded: send it as the multipart field 'file'.")
    options = _options(params, settings.batch_size, settings.max_batch_size)
    pipeline.check(options)

    with gate.admit():
        started = time.perf_counter()
        with upload_on_disk(file.file, max_bytes=settings.max_upload_bytes, temp_dir=settings.temp_dir) as path:
            audio = decode_audio(
                path,
                timeout_s=settings.decode_timeout_s,
                max_seconds=settings.max_audio_seconds,
                ffmpeg=settings.ffmpeg_binary,
            )
        decode_s = round(time.perf_counter() - started, 4)
        transcript = pipeline.run(audio, options)
    transcript.timings["decode"] = decode_s

    if params.output != "json":
        body = RENDERERS[params.output](transcript.segments)
        return Response(body, media_type=MEDIA_TYPES[params.output])
    response = _to_response(transcript, model=pipeline.model_name, diarization_device=registry.diarization_device)
    return JSONResponse(response.model_dump())


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
