"""OpenAI's audio API on the wire: the JSON it expects back (its form fields are ``app/wire/forms.py``).

Shapes and spelling follow OpenAI's API reference and its Python SDK's types
(``openai.types.audio``), so existing clients parse our answers as they parse OpenAI's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.engine.whisper_models import DEFAULT_MODEL_ALIAS
from app.transcript import Task
from app.wire.schemas import ModelOut

# The model id every OpenAI client sends by default; it names the server's default model here.
OPENAI_MODEL_ALIAS = DEFAULT_MODEL_ALIAS

Granularity = Literal["word", "segment"]


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
    # Ours (the SDKs keep fields they do not know).
    language_probability: float | None = Field(
        default=None, description="How sure the model was of the language it identified (none when it was given)."
    )
    warnings: list[str] = Field(
        default=[], description="What may be wrong with the text: an unsure language, windows that failed the checks."
    )


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


class ModelCard(ModelOut):
    """OpenAI's model object, with our state of the model beside its fields (the SDKs keep unknown fields)."""

    object: Literal["model"] = "model"
    created: int = Field(description="When the server became ready (Unix seconds).")
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
