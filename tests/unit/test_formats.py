from app.services.asr import Segment
from app.services.formats import to_srt, to_tsv, to_txt, to_vtt

SEGMENTS = [
    Segment(start=0.0, end=1.5, text=" Hello there.", speaker="SPEAKER_00"),
    Segment(start=3661.25, end=3662.004, text="General\n\nKenobi --> you", speaker="SPEAKER_01"),
]


def test_srt_numbers_cues_with_comma_millis_and_speaker_labels():
    assert to_srt(SEGMENTS) == (
        "1\n00:00:00,000 --> 00:00:01,500\n[SPEAKER_00]: Hello there.\n"
        "\n"
        "2\n01:01:01,250 --> 01:01:02,004\n[SPEAKER_01]: General Kenobi -> you\n"
    )


def test_vtt_has_header_dot_millis_and_voice_tags():
    assert to_vtt(SEGMENTS) == (
        "WEBVTT\n"
        "\n00:00:00.000 --> 00:00:01.500\n<v SPEAKER_00>Hello there.\n"
        "\n01:01:01.250 --> 01:01:02.004\n<v SPEAKER_01>General Kenobi -> you\n"
    )


def test_no_speaker_no_label():
    plain = [Segment(start=0.0, end=1.0, text="hi")]
    assert "[" not in to_srt(plain)
    assert "<v" not in to_vtt(plain)
    assert to_txt(plain) == "hi\n"


def test_txt_and_tsv():
    assert to_txt(SEGMENTS) == "SPEAKER_00: Hello there.\nSPEAKER_01: General Kenobi -> you\n"
    assert to_tsv(SEGMENTS).splitlines() == [
        "start\tend\tspeaker\ttext",
        "0\t1500\tSPEAKER_00\tHello there.",
        "3661250\t3662004\tSPEAKER_01\tGeneral Kenobi -> you",
    ]


def test_empty_transcript_renders_valid_documents():
    assert to_srt([]) == ""
    assert to_vtt([]) == "WEBVTT\n"
    assert to_txt([]) == ""
    assert to_tsv([]) == "start\tend\tspeaker\ttext\n"
