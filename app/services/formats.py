"""Subtitle and text renderings of a transcript: SRT, WebVTT, plain text, TSV."""

from __future__ import annotations

from collections.abc import Callable

from app.services.asr import Segment

MEDIA_TYPES = {
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
}


def _timestamp(seconds: float, decimal_marker: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _one_line(text: str) -> str:
    # A blank line ends a cue in SRT and WebVTT, and "-->" would start a new timing line.
    return " ".join(text.split()).replace("-->", "->")


def to_srt(segments: list[Segment]) -> str:
    cues = []
    for index, seg in enumerate(segments, start=1):
        label = f"[{seg.speaker}]: " if seg.speaker else ""
        timing = f"{_timestamp(seg.start, ',')} --> {_timestamp(seg.end, ',')}"
        cues.append(f"{index}\n{timing}\n{label}{_one_line(seg.text)}\n")
    return "\n".join(cues)


def to_vtt(segments: list[Segment]) -> str:
    cues = ["WEBVTT\n"]
    for seg in segments:
        voice = f"<v {seg.speaker}>" if seg.speaker else ""
        timing = f"{_timestamp(seg.start, '.')} --> {_timestamp(seg.end, '.')}"
        cues.append(f"{timing}\n{voice}{_one_line(seg.text)}\n")
    return "\n".join(cues)


def to_txt(segments: list[Segment]) -> str:
    lines = [f"{seg.speaker}: {_one_line(seg.text)}" if seg.speaker else _one_line(seg.text) for seg in segments]
    return "\n".join(lines) + ("\n" if lines else "")


def to_tsv(segments: list[Segment]) -> str:
    """Times in integer milliseconds, as Whisper's own TSV writer does."""
    rows = ["start\tend\tspeaker\ttext"]
    for seg in segments:
        text = _one_line(seg.text).replace("\t", " ")
        rows.append(f"{round(seg.start * 1000)}\t{round(seg.end * 1000)}\t{seg.speaker or ''}\t{text}")
    return "\n".join(rows) + "\n"


RENDERERS: dict[str, Callable[[list[Segment]], str]] = {
    "srt": to_srt,
    "vtt": to_vtt,
    "txt": to_txt,
    "tsv": to_tsv,
}
