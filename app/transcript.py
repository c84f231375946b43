"""The transcript's vocabulary: what every stage produces (a request's options are ``app/engine/options.py``).

Every stage (Whisper, the aligners, the diarizer, the pipeline) and every wire format
(``app/wire/rendering.py``) speaks these types, and the response schemas are built from them, so a
new field is added here once. They are plain dataclasses: the stages fill and adjust them in
place; pydantic reads the ``Field`` annotations for the OpenAPI schema and for serialisation
(fields marked ``exclude`` feed some formats but stay out of the service's own JSON).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Annotated, Literal, Protocol

from pydantic import Field, TypeAdapter

Task = Literal["transcribe", "translate"]
WordTimeSource = Literal["wav2vec2", "whisper"]


@dataclass
class Word:
    word: str
    start: Annotated[float, Field(description="Seconds from the start of the file.")]
    end: float
    score: Annotated[float | None, Field(description="Confidence, 0–1, from the aligner or Whisper.")] = None
    speaker: str | None = None


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    avg_logprob: Annotated[float | None, Field(description="Whisper's mean token log-probability.")] = None
    speaker: str | None = None
    # For OpenAI's verbose_json: how likely the Whisper window this text was decoded from held
    # no speech at all, and the text's Whisper tokens.
    no_speech_prob: Annotated[float | None, Field(exclude=True)] = None
    tokens: Annotated[list[int], Field(exclude=True)] = field(default_factory=list)
    # How the window was decoded: the temperature its kept decode ran at (above the first: the
    # decode before failed the checks), and its text's compression ratio.
    temperature: Annotated[float | None, Field(exclude=True)] = None
    compression_ratio: Annotated[float | None, Field(exclude=True)] = None


@dataclass(frozen=True)
class SpeakerTurn:
    start: float
    end: float
    speaker: str


@dataclass
class DiarizationReport:
    requested: bool
    performed: bool = False
    diarizer: Annotated[
        str | None, Field(description="Which diarizer ran: the pretrained pipeline's name, or `offline`.")
    ] = None
    device: str | None = None
    detail: str | None = None
    turns: Annotated[
        list[SpeakerTurn], Field(description="Who speaks when, as the diarizer found it (turns may overlap).")
    ] = field(default_factory=list)
    known_speakers: Annotated[
        list[KnownSpeakerMatch],
        Field(description="The known speakers recognised: which diarized speaker took each name, and how alike."),
    ] = field(default_factory=list)


@dataclass
class KnownSpeakerMatch:
    name: str
    speaker: Annotated[str, Field(description="The diarizer's label the name replaced (SPEAKER_nn).")]
    similarity: Annotated[float, Field(description="Cosine similarity of the voice and its reference clip.")]


@dataclass
class Transcript:
    duration: float
    language: str | None
    language_probability: float | None
    segments: list[Segment]
    word_time_source: WordTimeSource | None
    diarization: DiarizationReport
    task: Task = "transcribe"
    model: str = ""
    temperature: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        # Whisper's raw segment texts start with a space; the aligner's do not.
        return " ".join(text for s in self.segments if (text := s.text.strip()))

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]


@dataclass(frozen=True)
class TokenLogprob:
    """One decoded token with its log-probability (OpenAI's ``logprobs`` entries)."""

    token: str
    logprob: float
    bytes: list[int]  # the token's UTF-8 bytes (a token may hold part of a character)


@dataclass(frozen=True)
class TextPiece:
    """One Whisper window's text the moment it is decoded, before word times and speakers.

    Pieces come in audio order; their texts joined by spaces are the transcript's ``text``.
    """

    index: int  # the piece's place among the request's pieces
    start: float
    end: float
    text: str  # stripped, never empty
    logprobs: list[TokenLogprob] | None  # when the listener asked for them


class TextListener(Protocol):
    """Hears a request's text as it is decoded (a streaming response, a live session)."""

    logprobs: bool  # whether to score each token (an extra pass on CTranslate2)

    def __call__(self, piece: TextPiece) -> None: ...


def dump_transcript(transcript: Transcript) -> str:
    """The whole transcript as JSON, every field included, for ``load_transcript`` to rebuild."""
    return json.dumps(asdict(transcript))


def load_transcript(text: str) -> Transcript:
    return TypeAdapter(Transcript).validate_python(json.loads(text))
