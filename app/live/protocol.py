"""The subset of OpenAI's realtime protocol that transcription needs: session settings and events.

Client events: ``session.update``, ``input_audio_buffer.append`` / ``.commit`` / ``.clear``.
Server events: ``session.created`` / ``.updated``, ``input_audio_buffer.speech_started`` /
``.speech_stopped`` / ``.committed`` / ``.cleared``, ``conversation.item.input_audio_transcription.delta``
/ ``.completed`` / ``.failed``, and ``error``. Field names follow OpenAI's GA realtime API (the
``openai`` SDK's ``client.realtime.connect``); what this service adds is marked as ours.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.engine.options import MAX_KNOWN_SPEAKERS, ReferenceClip, SpeakerName, Temperature
from app.errors import ServiceError
from app.live.pcm import INPUT_RATES
from app.live.turns import ServerVad
from app.transcript import TokenLogprob, Transcript

LOGPROBS = "item.input_audio_transcription.logprobs"


class ProtocolError(ValueError):
    """A client event this session cannot act on: sent back as an ``error`` event."""

    def __init__(self, message: str, *, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


@dataclass(frozen=True)
class LiveConfig:
    """A session's settings: OpenAI's defaults until ``session.update`` changes them."""

    rate: int = 24000
    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    keywords: tuple[str, ...] = ()  # OpenAI's transcription keywords: our hotwords
    turn_detection: ServerVad | None = field(default_factory=ServerVad)  # None: the client commits turns
    diarize: bool = False  # ours: speakers of each turn on its completed event
    # Ours: known speakers, as on /transcribe — names, and a reference clip (data URL) for each
    # name the tenant's voice book does not hold. Naming them turns speakers on.
    known_speaker_names: tuple[str, ...] = ()
    known_speaker_references: tuple[str, ...] = ()
    # Ours: a committed turn's temperature schedule, as on /transcribe (0: beam search, and a turn
    # that fails the checks is decoded again by sampling; [0]: one pass, the fastest final).
    temperature: float | tuple[float, ...] = 0.0
    logprobs: bool = False

    @property
    def speakers(self) -> bool:
        return self.diarize or bool(self.known_speaker_names)

    @property
    def temperature_schedule(self) -> float | list[float]:
        """``temperature`` as /transcribe takes it (and as the client sent it): a number or a list."""
        return list(self.temperature) if isinstance(self.temperature, tuple) else self.temperature

    def described(self, session_id: str, model: str) -> dict[str, Any]:
        """The session object of ``session.created`` / ``session.updated``."""
        vad = self.turn_detection
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": session_id,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": self.rate},
                    "transcription": {
                        "model": self.model or model,
                        "language": self.language,
                        "prompt": self.prompt,
                        "keywords": list(self.keywords),
                        "diarize": self.speakers,
                        "known_speaker_names": list(self.known_speaker_names),  # never the clips
                        "temperature": self.temperature_schedule,
                    },
                    "turn_detection": None
                    if vad is None
                    else {
                        "type": "server_vad",
                        "threshold": vad.threshold,
                        "prefix_padding_ms": vad.prefix_padding_ms,
                        "silence_duration_ms": vad.silence_duration_ms,
                    },
                    "noise_reduction": None,
                }
            },
            "include": [LOGPROBS] if self.logprobs else [],
        }


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Format(_Lenient):
    type: Literal["audio/pcm"] = "audio/pcm"
    rate: int = 24000


class _Transcription(_Lenient):
    model: str | None = None
    language: str | None = Field(default=None, max_length=16)
    prompt: str | None = Field(default=None, max_length=4000)
    keywords: list[Annotated[str, Field(max_length=100)]] = Field(default=[], max_length=100)
    diarize: bool = False
    known_speaker_names: list[SpeakerName] = Field(default=[], max_length=MAX_KNOWN_SPEAKERS)
    known_speaker_references: list[ReferenceClip] = Field(default=[], max_length=MAX_KNOWN_SPEAKERS)
    temperature: Temperature = 0.0


class _TurnDetection(_Lenient):
    type: Literal["server_vad"] = "server_vad"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    prefix_padding_ms: int = Field(default=300, ge=0, le=5000)
    silence_duration_ms: int = Field(default=500, ge=100, le=10000)


class _Input(_Lenient):
    format: _Format | None = None
    transcription: _Transcription | None = None
    turn_detection: _TurnDetection | None = None


class _Audio(_Lenient):
    input: _Input | None = None


class _Session(_Lenient):
    type: Literal["transcription"] = "transcription"
    audio: _Audio | None = None
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None


def updated(config: LiveConfig, session: object) -> LiveConfig:
    """``config`` with what a ``session.update``'s ``session`` sets (fields left out stay)."""
    try:
        parsed = _Session.model_validate(session)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ProtocolError(
            f"session.{where}: {error['msg']}", code="invalid_value", param=f"session.{where}"
        ) from None
    changes: dict[str, Any] = {}
    if parsed.include is not None:
        changes["logprobs"] = LOGPROBS in parsed.include
    audio_input = parsed.audio.input if parsed.audio is not None else None
    if audio_input is not None:
        given = audio_input.model_fields_set
        if audio_input.format is not None:
            if audio_input.format.rate not in INPUT_RATES:
                raise ProtocolError(
                    f"audio/pcm at {audio_input.format.rate} Hz is not taken here: "
                    f"send {', '.join(map(str, INPUT_RATES))} Hz.",
                    code="invalid_value",
                    param="session.audio.input.format.rate",
                )
            changes["rate"] = audio_input.format.rate
        if audio_input.transcription is not None:
            transcription = audio_input.transcription
            for name in transcription.model_fields_set:
                value = getattr(transcription, name)
                changes[name] = tuple(value) if isinstance(value, list) else value
            names = changes.get("known_speaker_names", config.known_speaker_names)
            if "diarize" in transcription.model_fields_set and not transcription.diarize and names:
                raise ProtocolError(
                    "known speakers name diarized speakers, but diarize is false: "
                    "send known_speaker_names [] to stop naming them.",
                    code="invalid_value",
                    param="session.audio.input.transcription.diarize",
                )
        if "turn_detection" in given:
            vad = audio_input.turn_detection
            changes["turn_detection"] = (
                None if vad is None else ServerVad(vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms)
            )
    return replace(config, **changes)


@contextlib.contextmanager
def refused_as_protocol_errors() -> Iterator[None]:
    """Settings the options or the service refuse, as the ``error`` event that names the field."""
    try:
        yield
    except ValidationError as exc:
        detail = exc.errors()[0]
        reason = str(detail["msg"]).removeprefix("Value error, ")
        where = f"session.audio.input.transcription.{detail['loc'][0]}" if detail["loc"] else None
        raise ProtocolError(reason, code="invalid_parameter", param=where) from None
    except ServiceError as exc:
        param = f"session.audio.input.transcription.{exc.param}" if exc.param else None
        raise ProtocolError(exc.message, code=exc.code, param=param) from None


def parse_client_event(text: str) -> dict[str, Any]:
    """A client's message as an event object; ProtocolError (sent back as an ``error`` event, the
    session going on) for anything else: not JSON, nested past the parser's depth, a number too
    long for Python's int, NaN or Infinity (not JSON at all), a top level that is not an object."""
    try:
        parsed = json.loads(text, parse_constant=_not_json)
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            f"The message is not JSON: {exc.msg} at character {exc.pos}.", code="invalid_json"
        ) from None
    except RecursionError:
        raise ProtocolError("The message nests arrays or objects too deeply to read.", code="invalid_json") from None
    except ValueError as exc:  # an integer over Python's digit limit, or a NaN/Infinity
        raise ProtocolError(f"The message is not JSON this server reads: {exc}.", code="invalid_json") from None
    if not isinstance(parsed, dict):
        raise ProtocolError("An event is a JSON object with a `type`.", code="invalid_event")
    return parsed


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def event(kind: str, **fields: Any) -> dict[str, Any]:
    """A server event: its type, a fresh ``event_id``, its fields."""
    return {"type": kind, "event_id": f"event_{secrets.token_hex(8)}", **fields}


def error(message: str, *, code: str, kind: str = "invalid_request_error", **details: Any) -> dict[str, Any]:
    return event("error", error={"type": kind, "code": code, "message": message, **details})


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def transcription_delta(item: str, text: str) -> dict[str, Any]:
    return event("conversation.item.input_audio_transcription.delta", item_id=item, content_index=0, delta=text)


def transcription_failed(item: str, exc: Exception) -> dict[str, Any]:
    detail = {
        "type": "transcription_error",
        "code": exc.code if isinstance(exc, ServiceError) else "internal_error",
        "message": exc.message if isinstance(exc, ServiceError) else "The turn could not be transcribed.",
    }
    return event("conversation.item.input_audio_transcription.failed", item_id=item, content_index=0, error=detail)


def transcription_completed(
    item: str, transcript: Transcript, offset_s: float, logprobs: list[TokenLogprob] | None
) -> dict[str, Any]:
    def at(seconds: float) -> float:
        return round(offset_s + seconds, 3)

    fields: dict[str, Any] = {
        "item_id": item,
        "content_index": 0,
        "transcript": transcript.text,
        "usage": {"type": "duration", "seconds": round(transcript.duration, 3)},
        # Ours: the language, each word's time in the session's audio, and the speakers when asked.
        "language": transcript.language,
        "words": [
            {"word": w.word, "start": at(w.start), "end": at(w.end), "probability": w.score, "speaker": w.speaker}
            for w in transcript.words
        ],
    }
    if transcript.diarization.requested:
        fields["segments"] = [
            {"start": at(s.start), "end": at(s.end), "text": s.text, "speaker": s.speaker} for s in transcript.segments
        ]
    if logprobs is not None:
        fields["logprobs"] = [{"token": e.token, "logprob": e.logprob, "bytes": e.bytes} for e in logprobs]
    return event("conversation.item.input_audio_transcription.completed", **fields)
