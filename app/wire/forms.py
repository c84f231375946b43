"""The form fields each transcription route takes besides the file, and how each becomes options.

The service's own forms are ``TranscribeOptions`` (``app/engine/options.py``) plus where the
answer goes, so an option declared there is a form field here with no second copy. OpenAI's
form keeps OpenAI's spelling (``prompt``, ``response_format``) and maps it onto the options.
The format choices come from the one table in ``app/wire/rendering.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from app.engine.options import (
    LanguageCode,
    Prompt,
    RecognitionOptions,
    SpeakerOptions,
    Temperature,
    TranscribeOptions,
)
from app.transcript import Task
from app.wire.openai_schemas import OPENAI_MODEL_ALIAS, Granularity
from app.wire.rendering import OutputFormat, ResponseFormat, TranslationFormat


class TranscribeParams(TranscribeOptions):
    """The form fields of POST /transcribe, besides the file."""

    output: OutputFormat = "json"


class JobParams(TranscribeParams):
    """The form fields of POST /v1/jobs: those of /transcribe, plus where to announce the end."""

    callback_url: str | None = Field(
        default=None,
        max_length=2000,
        description="POSTed the job's summary when it ends, signed (see docs/api.md); hosts in WEBHOOK_ALLOWED_HOSTS.",
    )


def _listed(value: object) -> object:
    # curl users send `timestamp_granularities=word,segment`; the SDKs send one `[]` field per value.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class OpenAITranscriptionParams(SpeakerOptions, RecognitionOptions):
    """The form fields of POST /v1/audio/transcriptions, besides the file (speaker, hotword and VAD
    fields are our extensions)."""

    model: str = Field(
        max_length=500, description=f"One of GET /v1/models (`{OPENAI_MODEL_ALIAS}`: the server's default model)."
    )
    language: LanguageCode = None
    prompt: Prompt = Field(default=None, description="Text that came before, or the spelling of names.")
    temperature: Temperature = 0.0
    response_format: ResponseFormat = "json"
    timestamp_granularities: Annotated[list[Granularity], BeforeValidator(_listed)] = Field(
        default=["segment"],
        description="`word` and/or `segment`; only with `verbose_json`. Sent as `timestamp_granularities[]`.",
    )
    stream: bool = Field(
        default=False,
        description="Server-sent events as the text is decoded: `transcript.text.delta` per Whisper window, "
        "`transcript.text.segment` per speaker segment (diarized_json), `transcript.text.done` last. "
        "With json, text or diarized_json; not for translations.",
    )
    include: Annotated[list[Literal["logprobs"]], BeforeValidator(_listed)] = Field(
        default=[],
        description="`logprobs`: each token's log-probability on the streamed deltas and the done event "
        "(stream=true only). Sent as `include[]`.",
    )

    @field_validator("timestamp_granularities")
    @classmethod
    def _granularities_need_verbose_json(cls, value: list[Granularity], info: ValidationInfo) -> list[Granularity]:
        # Runs only when the field is sent; response_format, declared before it, is validated by then.
        if info.data.get("response_format", "verbose_json") != "verbose_json":
            raise ValueError("timestamp_granularities needs response_format verbose_json")
        return value

    @field_validator("response_format")
    @classmethod
    def _diarized_json_needs_speakers(cls, value: str, info: ValidationInfo) -> str:
        if value == "diarized_json" and info.data.get("diarize") is False:
            raise ValueError("response_format diarized_json needs diarization, but diarize is false")
        return value

    def options(self, task: Task = "transcribe") -> TranscribeOptions:
        fmt = self.response_format
        diarize = True if fmt == "diarized_json" else self.diarize
        # Word times cost an alignment pass: take it for timed formats and for speakers, which
        # are assigned word by word; plain json and text need neither.
        timed = fmt not in ("json", "text") or bool(diarize) or self.hints.given or bool(self.known_speaker_names)
        return TranscribeOptions(
            model=self.model,
            language=self.language,
            task=task,
            diarize=diarize,
            num_speakers=self.num_speakers,
            min_speakers=self.min_speakers,
            max_speakers=self.max_speakers,
            known_speaker_names=self.known_speaker_names,
            known_speaker_references=self.known_speaker_references,
            initial_prompt=self.prompt,
            word_timestamps=timed,
            temperature=self.temperature,
            hotwords=self.hotwords,
            vad_onset=self.vad_onset,
            vad_offset=self.vad_offset,
            chunk_size=self.chunk_size,
            compression_ratio_threshold=self.compression_ratio_threshold,
            log_prob_threshold=self.log_prob_threshold,
            no_speech_threshold=self.no_speech_threshold,
        )


class OpenAITranslationParams(OpenAITranscriptionParams):
    """POST /v1/audio/translations: the same fields, into English (``language``, the spoken one, is ours)."""

    response_format: TranslationFormat = "json"
