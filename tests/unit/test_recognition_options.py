"""Hotwords and VAD knobs: validated with the request, resolved once, and where they take effect
(the decoder's prompt, the VAD's thresholds and window length)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.engine.options import Capabilities, TranscribeOptions, resolve
from app.engine.vad import CHUNK_SECONDS, VAD_ONSET, SileroVad, SpeechParams
from app.engine.whisper.engine import whisper_prompt

CAN = Capabilities("m", False, frozenset({"en"}), False, None, 8, 16)


class _Tokenizer:
    """Whisper's special tokens, and one token per character of text."""

    sot_prev, sot_sequence, no_timestamps = 1, [2, 3], 4

    def encode(self, text: str) -> list[int]:
        return [100 + ord(c) for c in text]


def test_hotwords_come_first_in_the_previous_text_then_the_end_of_the_prompt():
    tokenizer = _Tokenizer()
    assert whisper_prompt(tokenizer, None) == [2, 3, 4]
    assert whisper_prompt(tokenizer, None, "ab") == [1, 100 + ord(" "), 100 + ord("a"), 100 + ord("b"), 2, 3, 4]
    both = whisper_prompt(tokenizer, "x" * 500, "ab")
    assert both[:4] == [1, 132, 197, 198] and both[-3:] == [2, 3, 4]
    assert len(both) == 1 + 223 + 3, "hotwords and previous text share Whisper's 223 tokens of context"
    assert whisper_prompt(tokenizer, "hi", "  ") == whisper_prompt(tokenizer, "hi")


def test_resolved_options_carry_hotwords_and_speech_params():
    options = resolve(TranscribeOptions(hotwords="Kubernetes", vad_onset=0.6, chunk_size=10), CAN)
    assert options.hotwords == "Kubernetes"
    assert options.speech == SpeechParams(onset=0.6, offset=None, chunk_size=10)
    assert options.decoding("en").hotwords == "Kubernetes"
    defaults = resolve(TranscribeOptions(), CAN)
    assert defaults.speech == SpeechParams(VAD_ONSET, None, CHUNK_SECONDS) and defaults.hotwords is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"vad_onset": 0.4, "vad_offset": 0.6}, "vad_offset (0.6) is greater than vad_onset (0.4)"),
        ({"vad_offset": 0.9}, "greater than vad_onset (0.5)"),
        ({"vad_onset": 1.0}, "less than 1"),
        ({"chunk_size": 45}, "less than or equal to 30"),
        ({"chunk_size": 0.5}, "greater than or equal to 1"),
        ({"hotwords": "x" * 1001}, "at most 1000 characters"),
    ],
)
def test_bad_knobs_are_refused_in_words(fields, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TranscribeOptions(**fields)


def test_silero_windows_follow_the_requested_chunk_size(sample_wav):
    from app.engine.audio import read_pcm16_wav

    audio = read_pcm16_wav(sample_wav)
    vad = SileroVad()
    default = vad(audio)
    short = vad(audio, SpeechParams(chunk_size=5))
    assert max(c.end - c.start for c in default) > 5
    assert all(c.end - c.start <= 5.0 + 1e-6 for c in short) and len(short) > len(default)
    strict = vad(audio, SpeechParams(onset=0.95, offset=0.9))
    assert sum(c.end - c.start for c in strict) < sum(c.end - c.start for c in default)


def test_they_are_part_of_the_job_cache_key():
    from app.jobs.keys import result_key

    def key(**fields: object) -> str:
        return result_key("audio", resolve(TranscribeOptions(**fields), CAN), "models", "scope")

    assert len({key(), key(hotwords="beep"), key(chunk_size=10), key(vad_onset=0.6)}) == 4
    assert key(hotwords="beep") == key(hotwords="beep")
