"""Every wire format of a transcript, in one place: ours and OpenAI's JSON, text and subtitles.

Routers pick a format by name and return what ``render`` gives; nothing else formats a
transcript. JSON formats are built from the response models (``app/wire/schemas.py``,
``app/wire/openai_schemas.py``), so the OpenAPI schema and the bytes sent agree.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from app.engine.whisper.fallback import compression_ratio
from app.transcript import Segment, Transcript, Word
from app.wire.openai_schemas import (
    DiarizedSegment,
    Granularity,
    Transcription,
    TranscriptionDiarized,
    TranscriptionSegment,
    TranscriptionVerbose,
    TranscriptionWord,
    Usage,
)
from app.wire.schemas import SpeakerOut, TranscriptionResponse

JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"

Renderer = Callable[[Transcript, Collection[Granularity]], "str | BaseModel"]


@dataclass(frozen=True)
class WireFormat:
    """One way to write a transcript, and the names it has on each API."""

    media_type: str
    render: Renderer
    output: str | None = None  # its name in `output` (/transcribe) and `?format=` (/v1/jobs)
    openai: str | None = None  # its name in OpenAI's `response_format`
    translation: bool = True  # offered by /v1/audio/translations too (when `openai` names it)


def _without_granularities(render: Callable[[Transcript], str | BaseModel]) -> Renderer:
    return lambda transcript, _granularities: render(transcript)


# Whisper's word pieces for these are characters, written without spaces between them
# (whisperx.alignment.LANGUAGES_WITHOUT_SPACES).
_NO_SPACES = frozenset({"ja", "zh"})


@dataclass(frozen=True)
class Rendered:
    body: bytes
    media_type: str


_SEGMENTS: tuple[Granularity, ...] = ("segment",)


def render(transcript: Transcript, fmt: str, *, granularities: Collection[Granularity] = _SEGMENTS) -> Rendered:
    """``transcript`` as the format named ``fmt`` in ``FORMATS``; ``granularities`` choose what verbose_json lists."""
    wire = FORMATS[fmt]
    content = wire.render(transcript, granularities)
    body = content.model_dump_json() if isinstance(content, BaseModel) else content
    return Rendered(body.encode(), wire.media_type)


def documented_media_types(formats: Collection[WireFormat]) -> dict[str, dict[str, object]]:
    """OpenAPI's ``content`` of a 200 that renders one of ``formats`` (JSON comes from the response model)."""
    return {fmt.media_type.split(";")[0]: {} for fmt in formats if fmt.media_type != JSON}


# --- JSON ---------------------------------------------------------------------------------


def transcript_json(transcript: Transcript) -> TranscriptionResponse:
    speaking_time: dict[str, float] = {}
    report = transcript.diarization
    for turn in report.turns:
        speaking_time[turn.speaker] = speaking_time.get(turn.speaker, 0.0) + turn.end - turn.start
    speakers = {
        label: SpeakerOut(
            duration=round(seconds, 3), segments=sum(1 for s in transcript.segments if s.speaker == label)
        )
        for label, seconds in speaking_time.items()
    }
    return TranscriptionResponse(
        text=transcript.text,
        language=transcript.language,
        language_probability=transcript.language_probability,
        duration=round(transcript.duration, 3),
        model=transcript.model,
        segments=transcript.segments,
        word_segments=transcript.words,
        speakers=speakers,
        num_speakers=len(speakers),
        diarization_device=report.device,
        diarization=report,
        word_timestamps_method=transcript.word_time_source,
        timings=transcript.timings,
        warnings=transcript.warnings,
    )


def openai_json(transcript: Transcript) -> Transcription:
    return Transcription(text=transcript.text, usage=openai_usage(transcript))


def openai_verbose(transcript: Transcript, granularities: Collection[Granularity]) -> TranscriptionVerbose:
    return TranscriptionVerbose(
        task=transcript.task,
        language=_language_name(transcript.language),
        duration=round(transcript.duration, 3),
        text=transcript.text,
        segments=[_openai_segment(i, s, transcript) for i, s in enumerate(transcript.segments)]
        if "segment" in granularities
        else None,
        words=[TranscriptionWord(word=w.word, start=w.start, end=w.end) for w in transcript.words]
        if "word" in granularities
        else None,
        usage=openai_usage(transcript),
        language_probability=transcript.language_probability,
        warnings=transcript.warnings,
    )


def openai_diarized(transcript: Transcript) -> TranscriptionDiarized:
    """OpenAI's speaker segments: a new segment wherever the speaker changes, even mid-sentence."""
    joiner = "" if transcript.language in _NO_SPACES else " "
    segments: list[DiarizedSegment] = []
    for segment in transcript.segments:
        for speaker, start, end, text in _speaker_runs(segment, joiner):
            segments.append(
                DiarizedSegment(id=f"seg_{len(segments)}", start=start, end=end, text=text, speaker=speaker)
            )
    return TranscriptionDiarized(
        task=transcript.task,
        duration=round(transcript.duration, 3),
        text=transcript.text,
        segments=segments,
        usage=openai_usage(transcript),
    )


def _speaker_runs(segment: Segment, joiner: str) -> list[tuple[str, float, float, str]]:
    # Words the diarizer could not place (no turn overlaps them) keep the segment's speaker.
    fallback = segment.speaker or "unknown"
    runs: list[tuple[str, list[Word]]] = []
    for word in segment.words:
        speaker = word.speaker or fallback
        if runs and runs[-1][0] == speaker:
            runs[-1][1].append(word)
        else:
            runs.append((speaker, [word]))
    if len(runs) <= 1:
        return [(runs[0][0] if runs else fallback, segment.start, segment.end, segment.text)]
    return [(speaker, words[0].start, words[-1].end, joiner.join(w.word for w in words)) for speaker, words in runs]


def _openai_segment(index: int, segment: Segment, transcript: Transcript) -> TranscriptionSegment:
    return TranscriptionSegment(
        id=index,
        seek=round(segment.start * 100),
        start=segment.start,
        end=segment.end,
        text=segment.text,
        tokens=segment.tokens,
        # How its window was decoded: the kept decode's temperature and the checks' values.
        temperature=transcript.temperature if segment.temperature is None else segment.temperature,
        avg_logprob=segment.avg_logprob,
        compression_ratio=(
            round(compression_ratio(segment.text.strip()), 3)
            if segment.compression_ratio is None
            else segment.compression_ratio
        ),
        no_speech_prob=segment.no_speech_prob,
    )


def openai_usage(transcript: Transcript) -> Usage:
    return Usage(seconds=round(transcript.duration, 3))


def _language_name(code: str | None) -> str:
    from whisperx.utils import LANGUAGES  # a plain dict; the module imports nothing heavy

    return LANGUAGES.get(code or "", code or "unknown")


# --- text and subtitles ---------------------------------------------------------------------


def _timestamp(seconds: float, decimal_marker: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _one_line(text: str) -> str:
    """``text`` (a transcript's, or a speaker's name) as one line of plain characters: no line break,
    tab or other control character survives, so no client's name or model's output can add a line,
    a column or a terminal escape to any format below."""
    visible = "".join(c for c in text if c.isprintable() or c.isspace())
    # A blank line ends a cue in SRT and WebVTT, and "-->" would start a new timing line.
    return " ".join(visible.split()).replace("-->", "->")


def _vtt_escaped(text: str) -> str:
    # WebVTT cue text is markup: "<" opens a tag (a voice, a class, a timestamp), ">" closes a
    # voice's name, "&" starts an entity.
    return _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_srt(transcript: Transcript) -> str:
    cues: list[str] = []
    for seg in transcript.segments:
        name, text = _one_line(seg.speaker or ""), _one_line(seg.text)
        line = f"[{name}]: {text}" if name else text
        if line:  # an empty cue text would end the cue at its timing line
            timing = f"{_timestamp(seg.start, ',')} --> {_timestamp(seg.end, ',')}"
            cues.append(f"{len(cues) + 1}\n{timing}\n{line}\n")
    return "\n".join(cues)


def to_vtt(transcript: Transcript) -> str:
    cues = ["WEBVTT\n"]
    for seg in transcript.segments:
        text = _vtt_escaped(seg.text)
        name = _vtt_escaped(seg.speaker or "")
        # A name ending in "-" would make "-->" with the tag's ">", a timing line; the space
        # before ">" is not part of the name (WebVTT strips an annotation's outer spaces).
        voice = f"<v {name}{' ' if name.endswith('-') else ''}>" if name else ""
        if text or voice:
            timing = f"{_timestamp(seg.start, '.')} --> {_timestamp(seg.end, '.')}"
            cues.append(f"{timing}\n{voice}{text}\n")
    return "\n".join(cues)


def to_text(transcript: Transcript) -> str:
    text = _one_line(transcript.text)
    return text + "\n" if text else ""


def to_txt(transcript: Transcript) -> str:
    lines = []
    for seg in transcript.segments:
        name, text = _one_line(seg.speaker or ""), _one_line(seg.text)
        lines.append(f"{name}: {text}" if name else text)
    return "\n".join(lines) + ("\n" if lines else "")


def to_tsv(transcript: Transcript) -> str:
    """Times in integer milliseconds, as Whisper's own TSV writer does."""
    rows = ["start\tend\tspeaker\ttext"]
    for seg in transcript.segments:
        speaker = _one_line(seg.speaker or "")
        rows.append(f"{round(seg.start * 1000)}\t{round(seg.end * 1000)}\t{speaker}\t{_one_line(seg.text)}")
    return "\n".join(rows) + "\n"


# --- every format ------------------------------------------------------------------------------
# The one table: a new format is a renderer above and a row here; the forms' choices, the
# media types and the OpenAPI documentation are all read from it.

FORMATS: dict[str, WireFormat] = {
    "transcript_json": WireFormat(JSON, _without_granularities(transcript_json), output="json"),
    "openai_json": WireFormat(JSON, _without_granularities(openai_json), openai="json"),
    "verbose_json": WireFormat(JSON, lambda t, granularities: openai_verbose(t, granularities), openai="verbose_json"),
    "diarized_json": WireFormat(
        JSON, _without_granularities(openai_diarized), openai="diarized_json", translation=False
    ),
    "text": WireFormat(_TEXT, _without_granularities(to_text), openai="text"),  # the text alone
    "txt": WireFormat(_TEXT, _without_granularities(to_txt), output="txt"),  # a line per segment, with its speaker
    "srt": WireFormat(
        "application/x-subrip; charset=utf-8", _without_granularities(to_srt), output="srt", openai="srt"
    ),
    "vtt": WireFormat("text/vtt; charset=utf-8", _without_granularities(to_vtt), output="vtt", openai="vtt"),
    "tsv": WireFormat("text/tab-separated-values; charset=utf-8", _without_granularities(to_tsv), output="tsv"),
}
MEDIA_TYPES = {name: fmt.media_type for name, fmt in FORMATS.items()}
# By the name each API gives them.
OUTPUT_FORMATS = {fmt.output: name for name, fmt in FORMATS.items() if fmt.output}
OPENAI_FORMATS = {fmt.openai: name for name, fmt in FORMATS.items() if fmt.openai}
OPENAI_TRANSLATION_FORMATS = {fmt.openai: name for name, fmt in FORMATS.items() if fmt.openai and fmt.translation}

# The forms' choices, as the Literal types pydantic validates and documents (mypy sees str).
if TYPE_CHECKING:
    OutputFormat = str
    ResponseFormat = str
    TranslationFormat = str
else:
    OutputFormat = Literal[tuple(OUTPUT_FORMATS)]
    ResponseFormat = Literal[tuple(OPENAI_FORMATS)]
    TranslationFormat = Literal[tuple(OPENAI_TRANSLATION_FORMATS)]
