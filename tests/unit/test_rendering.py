import json

from app.transcript import DiarizationReport, Segment, Transcript, Word
from app.wire.rendering import MEDIA_TYPES, render, to_srt, to_tsv, to_txt, to_vtt


def _transcript(segments: list[Segment]) -> Transcript:
    return Transcript(3700.0, "en", None, segments, None, DiarizationReport(requested=False))


SEGMENTS = [
    Segment(start=0.0, end=1.5, text=" Hello there.", speaker="SPEAKER_00"),
    Segment(start=3661.25, end=3662.004, text="General\n\nKenobi --> you", speaker="SPEAKER_01"),
]


def test_srt_numbers_cues_with_comma_millis_and_speaker_labels():
    assert to_srt(_transcript(SEGMENTS)) == (
        "1\n00:00:00,000 --> 00:00:01,500\n[SPEAKER_00]: Hello there.\n"
        "\n"
        "2\n01:01:01,250 --> 01:01:02,004\n[SPEAKER_01]: General Kenobi -> you\n"
    )


def test_vtt_has_header_dot_millis_and_voice_tags():
    assert to_vtt(_transcript(SEGMENTS)) == (
        "WEBVTT\n"
        "\n00:00:00.000 --> 00:00:01.500\n<v SPEAKER_00>Hello there.\n"
        "\n01:01:01.250 --> 01:01:02.004\n<v SPEAKER_01>General Kenobi -&gt; you\n"
    )


def test_no_speaker_no_label():
    plain = [Segment(start=0.0, end=1.0, text="hi")]
    assert "[" not in to_srt(_transcript(plain))
    assert "<v" not in to_vtt(_transcript(plain))
    assert to_txt(_transcript(plain)) == "hi\n"


def test_txt_and_tsv():
    assert to_txt(_transcript(SEGMENTS)) == "SPEAKER_00: Hello there.\nSPEAKER_01: General Kenobi -> you\n"
    assert to_tsv(_transcript(SEGMENTS)).splitlines() == [
        "start\tend\tspeaker\ttext",
        "0\t1500\tSPEAKER_00\tHello there.",
        "3661250\t3662004\tSPEAKER_01\tGeneral Kenobi -> you",
    ]


def test_empty_transcript_renders_valid_documents():
    assert to_srt(_transcript([])) == ""
    assert to_vtt(_transcript([])) == "WEBVTT\n"
    assert to_txt(_transcript([])) == ""
    assert to_tsv(_transcript([])) == "start\tend\tspeaker\ttext\n"


def _spoken(language: str = "en") -> Transcript:
    words = [
        Word("Yes,", 0.0, 0.4, 0.9, "SPEAKER_00"),
        Word("I", 0.5, 0.6, 0.9, "SPEAKER_01"),
        Word("agree.", 0.6, 1.0, 0.9, "SPEAKER_01"),
    ]
    segment = Segment(0.0, 1.0, "Yes, I agree.", words, -0.25, "SPEAKER_01", no_speech_prob=0.01, tokens=[1, 2, 3])
    return Transcript(
        12.5, language, 0.99, [segment], "wav2vec2", DiarizationReport(requested=True, performed=True), temperature=0.2
    )


def test_diarized_json_splits_a_segment_where_the_speaker_changes():
    body = json.loads(render(_spoken(), "diarized_json").body)
    assert [(s["speaker"], s["start"], s["end"], s["text"]) for s in body["segments"]] == [
        ("SPEAKER_00", 0.0, 0.4, "Yes,"),
        ("SPEAKER_01", 0.5, 1.0, "I agree."),
    ]
    assert [s["id"] for s in body["segments"]] == ["seg_0", "seg_1"]
    assert body["text"] == "Yes, I agree." and body["usage"] == {"type": "duration", "seconds": 12.5}


def test_diarized_json_joins_characters_without_spaces_in_chinese():
    transcript = _spoken("zh")
    body = json.loads(render(transcript, "diarized_json").body)
    assert body["segments"][1]["text"] == "Iagree."


def test_verbose_json_segments_carry_whisper_fields():
    body = json.loads(render(_spoken(), "verbose_json", granularities=("segment", "word")).body)
    assert body["language"] == "english" and body["task"] == "transcribe" and body["duration"] == 12.5
    [segment] = body["segments"]
    assert segment["tokens"] == [1, 2, 3] and segment["temperature"] == 0.2 and segment["no_speech_prob"] == 0.01
    assert segment["avg_logprob"] == -0.25 and segment["seek"] == 0
    assert 0 < segment["compression_ratio"] < 2.4
    assert body["words"] == [
        {"word": "Yes,", "start": 0.0, "end": 0.4},
        {"word": "I", "start": 0.5, "end": 0.6},
        {"word": "agree.", "start": 0.6, "end": 1.0},
    ]


def test_a_repetition_loop_shows_in_the_compression_ratio():
    looped = _spoken()
    looped.segments[0].text = "thank you " * 40
    [segment] = json.loads(render(looped, "verbose_json").body)["segments"]
    assert segment["compression_ratio"] > 2.4


def test_our_json_keeps_openai_only_fields_out():
    body = json.loads(render(_spoken(), "transcript_json").body)
    assert set(body["segments"][0]) == {"start", "end", "text", "words", "avg_logprob", "speaker"}
    assert body["num_speakers"] == 0 and body["text"] == "Yes, I agree."


def test_every_format_has_a_media_type():
    for fmt in MEDIA_TYPES:
        assert render(_spoken(), fmt).media_type == MEDIA_TYPES[fmt]
