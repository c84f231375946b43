"""A request's options: as the client asked, then resolved once into what every stage runs with.

- ``TranscribeOptions`` is what a client may ask for, validated (a known language code,
  consistent speaker counts, bounded numbers). ``None`` means "the server's default". The
  service's own form (``/transcribe``, ``/v1/jobs``) *is* this model plus its output field,
  so a new option is declared here once and reaches the form, the OpenAPI schema, the job
  store and the stages without another copy.
- ``resolve`` decides every default and checks the options against what the loaded models
  can do (``Capabilities``), once per request and before any audio is decoded. Its result,
  ``ResolvedOptions``, is frozen and has no "server default" left in it.
- Stages take the part they need: Whisper a ``Decoding`` (``ResolvedOptions.decoding``,
  ``decoding.py``), the diarizer the ``SpeakerHints``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from app.engine.decoding import Decoding, Urgency
from app.engine.speakers.names import MAX_NAME_CHARS, speaker_name
from app.engine.vad import CHUNK_SECONDS, DEFAULT_SPEECH, VAD_ONSET, SpeechParams
from app.engine.whisper.fallback import (
    COMPRESSION_RATIO_THRESHOLD,
    LOG_PROB_THRESHOLD,
    NO_SPEECH_THRESHOLD,
    TEMPERATURES,
    Checks,
)
from app.errors import InvalidParameter
from app.transcript import Task


def whisper_languages() -> frozenset[str]:
    """Every language code Whisper has a token for (faster-whisper's list; read on first use, not at import)."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES)


def _language_code(value: object) -> str | None:
    if value is None:
        return None
    code = str(value).strip().lower()
    if code in ("", "auto"):
        return None
    if code not in whisper_languages():
        raise ValueError(f"unknown language code {value!r}; use 'auto' or an ISO 639-1 code Whisper knows")
    return code


def _blank_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _language_enum(schema: dict[str, Any]) -> None:
    """The codes themselves in the schema (read when it is generated, not at import)."""
    for choice in schema.get("anyOf", [schema]):
        if choice.get("type") == "string":
            choice["enum"] = ["auto", *sorted(whisper_languages())]


LanguageCode = Annotated[
    str | None,
    BeforeValidator(_language_code),
    Field(description="`auto` (default) or an ISO 639-1 code such as `en`.", json_schema_extra=_language_enum),
]
Prompt = Annotated[Annotated[str, Field(max_length=1000)] | None, BeforeValidator(_blank_is_none)]


def _temperatures(value: object) -> object:
    # A schedule from curl: `temperature=0,0.4,0.8`; the SDKs send one `temperature[]` field per value.
    if isinstance(value, str) and "," in value:
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


_OneTemperature = Annotated[float, Field(ge=0.0, le=1.0)]
Temperature = Annotated[
    # At most as many as the default schedule: a request costs at most six passes of its audio.
    _OneTemperature | Annotated[list[_OneTemperature], Field(min_length=1, max_length=len(TEMPERATURES))],
    BeforeValidator(_temperatures),
    Field(
        description="0 (default): beam search, and a window whose decode fails the checks (it loops, or its "
        "tokens are unlikely) is decoded again at 0.2, 0.4 … 1.0 until one passes, as OpenAI and "
        "faster-whisper do. Above 0: sampling at that temperature only. A list: exactly that schedule "
        "(`[0]`: beam search, no retries)."
    ),
]

MAX_KNOWN_SPEAKERS = 8
# A reference clip is 2–10 s: as 16-bit 48 kHz stereo WAV, under 2 MB; base64 adds a third.
MAX_REFERENCE_CHARS = 3 * 2**20


def _speaker_name(value: object) -> object:
    return speaker_name(value) if isinstance(value, str) else value


def _data_url(value: object) -> object:
    if isinstance(value, str) and not value.startswith("data:"):
        raise ValueError("a known speaker reference is a data URL of a clip: data:audio/wav;base64,…")
    return value


def _one_is_a_list(value: object) -> object:
    return [value] if isinstance(value, str) else value  # a form field sent once is one value


SpeakerName = Annotated[str, BeforeValidator(_speaker_name), Field(max_length=MAX_NAME_CHARS)]
ReferenceClip = Annotated[str, BeforeValidator(_data_url), Field(max_length=MAX_REFERENCE_CHARS)]


@dataclass(frozen=True)
class SpeakerHints:
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.num_speakers, self.min_speakers, self.max_speakers))


class SpeakerOptions(BaseModel):
    """Who speaks: shared by the service's own options and (as extensions) OpenAI's form."""

    model_config = ConfigDict(frozen=True)

    diarize: bool | None = Field(
        default=None,
        description="Label speakers. Default: when a diarizer is loaded and words are timed, or when speaker "
        "hints are given.",
    )
    num_speakers: int | None = Field(default=None, ge=1, le=64)
    min_speakers: int | None = Field(default=None, ge=1, le=64)
    max_speakers: int | None = Field(default=None, ge=1, le=64)
    known_speaker_names: Annotated[list[SpeakerName], BeforeValidator(_one_is_a_list)] = Field(
        default=[],
        max_length=MAX_KNOWN_SPEAKERS,
        description="Names for the speakers whose voices `known_speaker_references` holds, in the same order: "
        "a diarized speaker whose voice matches a reference is labelled with its name (OpenAI's field; "
        "sent as `known_speaker_names[]`).",
    )
    known_speaker_references: Annotated[list[ReferenceClip], BeforeValidator(_one_is_a_list)] = Field(
        default=[],
        max_length=MAX_KNOWN_SPEAKERS,
        description="2–10 s of each named speaker's voice alone, as data URLs (`data:audio/wav;base64,…`; "
        "on /transcribe also as file parts), one per name (sent as `known_speaker_references[]`).",
    )

    @model_validator(mode="after")
    def _consistent_speakers(self) -> SpeakerOptions:
        low, high, exact = self.min_speakers, self.max_speakers, self.num_speakers
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_speakers ({low}) is greater than max_speakers ({high})")
        if exact is not None and ((low is not None and exact < low) or (high is not None and exact > high)):
            raise ValueError(f"num_speakers ({exact}) is outside min_speakers/max_speakers")
        if self.diarize is False and self.hints.given:
            raise ValueError("speaker hints were given but diarize is false")
        names, references = self.known_speaker_names, self.known_speaker_references
        if len(references) > len(names):
            raise ValueError(
                f"{len(names)} known_speaker_names but {len(references)} known_speaker_references: "
                "send one name per reference clip, in the same order"
            )
        if len(set(names)) != len(names):
            raise ValueError("known_speaker_names has the same name twice; each name is one voice")
        if names and self.diarize is False:
            raise ValueError("known speakers name diarized speakers, but diarize is false")
        return self

    @property
    def known_speakers(self) -> tuple[tuple[str, str], ...]:
        """(name, reference clip as a data URL), in the order sent, for the names that have a clip."""
        return tuple(zip(self.known_speaker_names, self.known_speaker_references, strict=False))

    @property
    def names_without_clips(self) -> list[str]:
        """Names sent beyond the clips: voices to take from the tenant's voice book (/v1/speakers)."""
        return list(names_without_clips(self.known_speaker_names, self.known_speaker_references))

    def with_stored_clips(self, stored: dict[str, str]) -> Self:
        """These options with the clips of ``names_without_clips`` found in ``stored`` (name → data URL)."""
        clips = with_stored_clips(self.known_speaker_names, self.known_speaker_references, stored)
        return self if clips is None else self.model_copy(update={"known_speaker_references": list(clips)})

    @property
    def hints(self) -> SpeakerHints:
        return SpeakerHints(self.num_speakers, self.min_speakers, self.max_speakers)


class RecognitionOptions(BaseModel):
    """Words to listen for and how speech is found: shared by the service's own options and
    (as extensions) OpenAI's form. ``None``: the server's default."""

    model_config = ConfigDict(frozen=True)

    hotwords: Prompt = Field(
        default=None,
        description="Words to expect (names, jargon), as faster-whisper's `hotwords`: put before the prompt's "
        "previous text, so the decoder leans toward them.",
    )
    vad_onset: float | None = Field(
        default=None, gt=0.0, lt=1.0, description=f"Speech starts where the VAD's score rises over this ({VAD_ONSET})."
    )
    vad_offset: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="Speech goes on until the score falls under this (at most vad_onset)."
    )
    chunk_size: float | None = Field(
        default=None,
        ge=1.0,
        le=CHUNK_SECONDS,
        description=f"The longest stretch of speech decoded as one Whisper window, seconds ({CHUNK_SECONDS}).",
    )
    compression_ratio_threshold: float | None = Field(
        default=None,
        gt=1.0,
        le=100.0,
        description="A window's text that compresses better than this (zlib) is taken for a loop and decoded "
        f"again at the next temperature ({COMPRESSION_RATIO_THRESHOLD}, faster-whisper's).",
    )
    log_prob_threshold: float | None = Field(
        default=None,
        ge=-100.0,
        le=0.0,
        description="A window whose tokens' mean log-probability is under this is decoded again at the next "
        f"temperature ({LOG_PROB_THRESHOLD}).",
    )
    no_speech_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="A window the model gives a no-speech probability over this, with tokens under "
        f"log_prob_threshold, gives no text ({NO_SPEECH_THRESHOLD}; 1: never).",
    )

    @model_validator(mode="after")
    def _offset_under_onset(self) -> RecognitionOptions:
        onset = self.speech.onset
        if self.vad_offset is not None and self.vad_offset > onset:
            raise ValueError(f"vad_offset ({self.vad_offset}) is greater than vad_onset ({onset})")
        return self

    @property
    def speech(self) -> SpeechParams:
        return SpeechParams(
            onset=VAD_ONSET if self.vad_onset is None else self.vad_onset,
            offset=self.vad_offset,
            chunk_size=CHUNK_SECONDS if self.chunk_size is None else self.chunk_size,
        )


class TranscribeOptions(SpeakerOptions, RecognitionOptions):
    """What one request asks for; ``None`` means "the server's default" (``resolve`` decides it)."""

    model: Annotated[str | None, BeforeValidator(_blank_is_none)] = Field(
        default=None,
        max_length=500,
        description="The Whisper model (one of GET /v1/models; default: the server's default model).",
    )
    language: LanguageCode = None
    task: Task = "transcribe"
    initial_prompt: Prompt = Field(default=None, description="Text that came before, or the spelling of names.")
    batch_size: int | None = Field(default=None, ge=1, le=256, description="Windows per batch (the server's cap).")
    word_timestamps: bool = Field(default=True, description="Time every word (alignment). `false` is faster.")
    temperature: Temperature = 0.0

    def options(self) -> TranscribeOptions:
        """Just the options, from a form that extends them (its own fields, such as ``output``, left out)."""
        return TranscribeOptions.model_construct(
            **{name: getattr(self, name) for name in TranscribeOptions.model_fields}
        )


@dataclass(frozen=True)
class Capabilities:
    """What options are resolved against: the loaded models' abilities and the server's limits."""

    model: str  # the model the options are resolved for (its id)
    multilingual: bool
    languages: frozenset[str]
    diarizer: bool
    diarizer_unavailable: str | None  # why there is no diarizer, in words
    default_batch_size: int
    max_batch_size: int


@dataclass(frozen=True)
class ResolvedOptions:
    """Every choice made. ``language`` None still means "identify it", ``initial_prompt`` None "no prompt"."""

    language: str | None
    task: Task
    diarize: bool
    hints: SpeakerHints
    initial_prompt: str | None
    batch_size: int
    word_timestamps: bool
    checks: Checks = field(default_factory=Checks)
    hotwords: str | None = None
    speech: SpeechParams = DEFAULT_SPEECH
    model: str | None = None  # the Whisper model's id (None: the pipeline's default, for callers that build these)
    known_speakers: tuple[tuple[str, str], ...] = ()  # (name, reference clip's data URL)
    short_windows: bool = False  # Whisper encodes only the audio, rounded up (a live partial's)

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages these options run through, in order (progress reports them)."""
        return (
            "vad",
            *(("language_detection",) if self.language is None else ()),
            "asr",
            *(("alignment",) if self.word_timestamps else ()),
            *(("diarization",) if self.diarize else ()),
        )

    def decoding(self, language: str, urgency: Urgency = Urgency.FILE) -> Decoding:
        """Whisper's part, in ``language`` (the one asked for, or the one identified)."""
        asked = (self.task, self.initial_prompt, self.checks, self.batch_size, self.hotwords)
        return Decoding(language, *asked, urgency, self.short_windows)


def names_without_clips(names: Sequence[str], clips: Sequence[str]) -> Sequence[str]:
    """Known speakers' names sent beyond their clips (one clip per name, in order): voices to
    take from the tenant's voice book."""
    return names[len(clips) :]


def with_stored_clips(names: Sequence[str], clips: Sequence[str], stored: Mapping[str, str]) -> tuple[str, ...] | None:
    """``clips`` completed from ``stored`` (the voice book: name → data URL) for the names sent
    beyond them; None when there is nothing to add or one of them is not stored (resolving then
    says which name has no clip)."""
    missing = names_without_clips(names, clips)
    if not missing or not all(name in stored for name in missing):
        return None
    return (*clips, *(stored[name] for name in missing))


def require_clips(options: SpeakerOptions) -> None:
    """InvalidParameter (a 422) when a known speaker's name has no reference clip (sent or stored)."""
    if options.names_without_clips:
        listed = ", ".join(repr(name) for name in options.names_without_clips)
        raise InvalidParameter(
            f"No reference clip for {listed}: send one in known_speaker_references[] (one per name, in order), "
            "or store the voice with POST /v1/speakers.",
            param="known_speaker_references",
        )


def resolve(options: TranscribeOptions, can: Capabilities) -> ResolvedOptions:
    """``options`` with every default decided, or InvalidParameter (a 422) when the models cannot do them."""
    batch_size = options.batch_size or can.default_batch_size
    if batch_size > can.max_batch_size:
        raise InvalidParameter(
            f"batch_size {batch_size} exceeds this server's limit of {can.max_batch_size}.", param="batch_size"
        )
    language = options.language
    if language is not None and language not in can.languages:
        if can.multilingual:
            raise InvalidParameter(f"The model {can.model} has no language {language!r}.", param="language")
        raise InvalidParameter(
            f"The model {can.model} is English-only; language {language!r} is not available.",
            param="language",
        )
    if options.task == "translate" and not can.multilingual:
        raise InvalidParameter(f"The model {can.model} is English-only and cannot translate.")
    hints = options.hints
    diarize = options.diarize
    if diarize is None:
        # Hints ask for speakers; otherwise label them when a diarizer is loaded and there are
        # word times to label (speakers are assigned word by word).
        diarize = hints.given or bool(options.known_speakers) or (options.word_timestamps and can.diarizer)
    require_clips(options)
    if diarize and not options.word_timestamps:
        raise InvalidParameter(
            "Speakers need word times (they are assigned word by word): "
            "drop word_timestamps=false or ask for no speakers.",
            param="diarize",
        )
    return ResolvedOptions(
        language=language,
        task=options.task,
        diarize=diarize,
        hints=hints,
        initial_prompt=options.initial_prompt,
        batch_size=batch_size,
        word_timestamps=options.word_timestamps,
        checks=_checks(options),
        hotwords=options.hotwords,
        speech=options.speech,
        model=can.model,
        known_speakers=options.known_speakers,
    )


def _checks(options: TranscribeOptions) -> Checks:
    """The temperature schedule (0 alone: OpenAI's fallback schedule) and the checks' thresholds."""
    asked = options.temperature
    temperatures = tuple(asked) if isinstance(asked, list) else TEMPERATURES if asked == 0 else (asked,)
    return Checks(
        temperatures,
        _or(options.compression_ratio_threshold, COMPRESSION_RATIO_THRESHOLD),
        _or(options.log_prob_threshold, LOG_PROB_THRESHOLD),
        _or(options.no_speech_threshold, NO_SPEECH_THRESHOLD),
    )


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
