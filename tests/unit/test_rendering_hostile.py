"""No text in a transcript — a client's speaker name or the model's own output — changes a
format's structure: every subtitle file parses back, with real parsers, to the transcript's
cues and timings; every text line and TSV row is one segment."""

from __future__ import annotations

import html
import io

import srt
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from app.transcript import DiarizationReport, Segment, Transcript
from app.wire.rendering import to_srt, to_tsv, to_txt, to_vtt

FORGERIES = [
    "Eve\n\n99\n00:00:00,000 --> 00:59:59,000\nINJECTED CUE",
    "Eve\r\n\r\n2\r\n00:00:00.000 --> 00:59:59.000\r\nINJECTED",
    "<v Mallory>forged</v>",
    "Bob> <b>bold</b> & <i>",
    "a --> b",
    "-->",
    "tab\there\tand\tthere",
    "NUL\x00ESC\x1b[31mred",
    "line\u2028separator\u2029paragraph\x85next",
    "\u202eevil\u200bzero\ufeffwidth",
    "WEBVTT",
    "NOTE a comment",
    "1",
    "&amp; &lt;v x&gt;",
    "",
    "   ",
]
hostile_text = st.one_of(
    st.sampled_from(FORGERIES), st.text(max_size=40), st.text(alphabet="\n\r\t<>&-v 0:1,.", max_size=30)
)


@st.composite
def transcripts(draw: st.DrawFn) -> Transcript:
    count = draw(st.integers(min_value=0, max_value=6))
    segments, start = [], 0.0
    for _ in range(count):
        length = draw(st.floats(min_value=0.01, max_value=30.0))
        text = draw(hostile_text)
        speaker = draw(st.none() | hostile_text)
        segments.append(Segment(start=round(start, 3), end=round(start + length, 3), text=text, speaker=speaker))
        start += length + draw(st.floats(min_value=0.0, max_value=5.0))
    return Transcript(start, "en", None, segments, None, DiarizationReport(requested=False))


def _visible(text: str | None) -> str:
    """What a segment's text or name may show in one line: the printable characters, spaces collapsed."""
    kept = "".join(c for c in text or "" if c.isprintable() or c.isspace())
    return " ".join(kept.split()).replace("-->", "->")


def _cued(transcript: Transcript) -> list[Segment]:
    return [s for s in transcript.segments if _visible(s.text) or _visible(s.speaker)]


@settings(max_examples=300, deadline=None)
@given(transcripts())
def test_srt_parses_back_to_the_transcripts_cues(transcript):
    parsed = list(srt.parse(to_srt(transcript)))
    expected = _cued(transcript)
    assert len(parsed) == len(expected)
    for cue, segment in zip(parsed, expected, strict=True):
        assert cue.start.total_seconds() == segment.start
        assert cue.end.total_seconds() == segment.end
        assert "\n" not in cue.content
        label = f"[{_visible(segment.speaker)}]: " if _visible(segment.speaker) else ""
        assert cue.content == label + _visible(segment.text)


@settings(max_examples=300, deadline=None)
@given(transcripts())
def test_vtt_parses_back_to_the_transcripts_cues(transcript):
    parsed = list(webvtt.from_buffer(io.StringIO(to_vtt(transcript))))
    expected = _cued(transcript)
    assert len(parsed) == len(expected)
    for caption, segment in zip(parsed, expected, strict=True):
        assert caption.start_in_seconds == int(segment.start) and caption.start.endswith(
            f"{round(segment.start * 1000) % 1000:03d}"
        )
        assert caption.end_in_seconds == int(segment.end)
        [line] = caption.raw_text.split("\n")
        assert "-->" not in line
        text = line
        if _visible(segment.speaker):
            # The only tag is the voice; its name, escaped, is its annotation (outer spaces stripped).
            tag, _, text = line.partition(">")
            assert tag.startswith("<v ") and "<" not in tag[1:]
            assert tag[3:].strip() == html.escape(_visible(segment.speaker), quote=False)
        assert text == html.escape(_visible(segment.text), quote=False)


@settings(max_examples=300, deadline=None)
@given(transcripts())
def test_txt_and_tsv_keep_one_line_and_four_columns_per_segment(transcript):
    assert len(to_txt(transcript).splitlines()) == len(transcript.segments)
    rows = to_tsv(transcript).split("\n")
    assert rows[-1] == ""
    assert len(rows[:-1]) == len(transcript.segments) + 1
    assert all(row.count("\t") == 3 for row in rows[:-1])
