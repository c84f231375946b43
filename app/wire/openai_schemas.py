"""OpenAI's audio API on the wire: the form fields it sends, the JSON it expects back.

Shapes and spelling follow OpenAI's API reference and its Python SDK's types
(``openai.types.audio``), so existing clients parse our answers as they parse OpenAI's.
Our extensions (speaker fields) come from ``SpeakerParams``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, ValidationInfo, field_validator

from app.transcript import Task, TranscribeOptions
from app.wire.schemas import LanguageCode, Prompt, SpeakerParams

# The model id every OpenAI client sends by default; it names the loaded Whisper here.
OPENAI_MODEL_ALIAS = "whisper-1"

ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]
Granularity = Literal["word", "segment"]


def _listed(value: object) -> object:
    # curl users send `timestamp_granularities=word,segment`; the SDKs send one `[]` field per value.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class OpenAITranscriptionParams(SpeakerParams):
    """The form fields of POST /v1/audio/transcriptions, besides the file."""

    model: str = Field(description=f"The loaded model's id, or `{OPENAI_MODEL_ALIAS}` for it.")
    language: LanguageCode = None
    prompt: Prompt = Field(default=None, description="Text that came before, or the spelling of names.")
    temperature: float = Field(
        default=0.0, ge=0.0, le=1.0, description="0: beam search (deterministic). Above 0: sampling."
    )
    response_format: ResponseFormat = "json"
    timestamp_granularities: Annotated[list[Granularity], BeforeValidator(_listed)] = Field(
        default=["segment"],
        description="`word` and/or `segment`; only with `verbose_json`. Sent as `timestamp_granularities[]`.",
    )
    stream: bool = Field(
        default=False,
        description="Not supported: the whole result comes at once (`true` is refused).",
        json_schema_extra={"enum": [False]},
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
        timed = fmt not in ("json", "text") or bool(diarize) or self.hints.given
        return TranscribeOptions(
            language=self.language,
            task=task,
            diarize=diarize,
            hints=self.hints,
            initial_prompt=self.prompt,
            word_timestamps=timed,
            temperature=self.temperature,
        )


class OpenAITranslationParams(OpenAITranscriptionParams):
    """POST /v1/audio/translations: the same fields, into English (``language``, the spoken one, is ours)."""

    response_format: Literal["json", "text", "srt", "verbose_json", "vtt"] = "json"


class Usage(BaseModel):
    type: Literal["duration"] = "duration"
    seconds: float


class Transcription(BaseModel):
    text: str
    usage: Usage


class TranscriptionWord(BaseModel):
    word: str
    start: float
    end: float


class TranscriptionSegment(BaseModel):
    id: int
    seek: int = Field(description="Where the segment starts, in 10 ms frames (Whisper's seek unit).")
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float | None
    compression_ratio: float
    no_speech_prob: float | None


class TranscriptionVerbose(BaseModel):
    task: Task
    language: str = Field(description="The language's English name, e.g. `english`.")
    duration: float
    text: str
    segments: list[TranscriptionSegment] | None = None
    words: list[TranscriptionWord] | None = None
    usage: Usage


class DiarizedSegment(BaseModel):
    type: Literal["transcript.text.segment"] = "transcript.text.segment"
    id: str
    start: float
    end: float
    text: str
    speaker: str


class TranscriptionDiarized(BaseModel):
    task: Task
    duration: float
    text: str
    segments: list[DiarizedSegment]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="When the model was loaded (Unix seconds).")
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
