"""A live session's audio path: base64 PCM16, the streaming resampler, streaming Silero, turn rules."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from scipy.signal import resample_poly

from app.live.pcm import BadAudio, Resampler, pcm16_from_base64
from app.live.turns import FRAME, ServerVad, StreamingSilero, TurnDetector, TurnEnded, TurnStarted

RATE = 16000


def _chunks(samples: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    rng, out, at = np.random.default_rng(seed), [], 0
    while at < len(samples):
        size = int(rng.integers(1, 3000))
        out.append(samples[at : at + size])
        at += size
    return out


def test_base64_pcm16_round_trips_and_refuses_what_is_not():
    samples = np.array([0, 1, -1, 32767, -32768], dtype="<i2")
    assert pcm16_from_base64(base64.b64encode(samples.tobytes()).decode()).tolist() == samples.tolist()
    with pytest.raises(BadAudio, match="base64"):
        pcm16_from_base64("not base64 at all!")
    with pytest.raises(BadAudio, match="odd number"):
        pcm16_from_base64(base64.b64encode(b"\x00\x01\x02").decode())


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 32000, 48000])
def test_resampling_in_pieces_is_resampling_whole(rate):
    seconds = 2
    t = np.arange(rate * seconds) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    whole = Resampler(rate)(tone)
    pieces = Resampler(rate)
    streamed = np.concatenate([pieces(chunk) for chunk in _chunks(tone)])
    assert len(whole) == len(streamed) == RATE * seconds
    np.testing.assert_allclose(streamed, whole, atol=1e-5)
    # The same tone as scipy's polyphase resampler gives, once the filters' start-up is past.
    reference = resample_poly(tone.astype(np.float64) / 32768, *_ratio(rate))
    delay = round(Resampler(rate).delay_s * RATE)
    middle = slice(RATE // 2, RATE)
    np.testing.assert_allclose(whole[middle], reference[middle.start - delay : middle.stop - delay], atol=0.02)


def _ratio(rate: int) -> tuple[int, int]:
    from math import gcd

    divisor = gcd(rate, RATE)
    return RATE // divisor, rate // divisor


def test_a_rate_without_a_short_filter_is_refused():
    with pytest.raises(ValueError, match="44100"):
        Resampler(44100)


def test_streaming_silero_scores_pieces_as_faster_whisper_scores_the_whole(sample_wav):
    from faster_whisper.audio import decode_audio
    from faster_whisper.vad import get_vad_model

    audio = decode_audio(str(sample_wav), sampling_rate=RATE)
    whole = get_vad_model()(audio[: len(audio) // FRAME * FRAME]).reshape(-1)
    silero = StreamingSilero()
    streamed = np.concatenate([silero(chunk) for chunk in _chunks(audio, seed=3)])
    np.testing.assert_allclose(streamed, whole[: len(streamed)], atol=1e-6)
    assert len(streamed) == len(audio) // FRAME
    assert whole.max() > 0.9 and whole.min() < 0.1  # real speech and real pauses


def _frames(seconds: float) -> int:
    return round(seconds * RATE / FRAME)


def test_a_turn_starts_with_its_prefix_and_ends_after_the_silence():
    vad = ServerVad(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)
    detector = TurnDetector(vad, max_turn_s=30)
    scores = np.array([0.1] * _frames(1) + [0.9] * _frames(2) + [0.4] * _frames(0.2) + [0.1] * _frames(1))
    events = detector.push(scores)
    assert isinstance(events[0], TurnStarted) and isinstance(events[1], TurnEnded) and len(events) == 2
    started, ended = events
    speech_start = _frames(1) * FRAME
    assert started.at == speech_start - 300 * RATE // 1000
    # 0.4 is under the threshold but over threshold - 0.15: speech goes on through it.
    assert ended.speech_end == (_frames(1) + _frames(2) + _frames(0.2)) * FRAME
    assert ended.at - ended.speech_end == pytest.approx(0.5 * RATE, abs=FRAME)
    assert ended.start == started.at and not detector.in_turn


def test_a_turn_is_cut_at_its_longest_and_positions_count_from_the_offset():
    detector = TurnDetector(ServerVad(prefix_padding_ms=0), max_turn_s=2, offset=10 * RATE)
    [started, ended, restarted] = detector.push(np.full(_frames(2.5), 0.9))
    assert started.at == 10 * RATE
    assert ended.at - started.at == pytest.approx(2 * RATE, abs=FRAME) and ended.speech_end == ended.at
    assert isinstance(restarted, TurnStarted) and detector.in_turn
    closing = detector.end_now()
    assert closing is not None and closing.start == restarted.at and detector.end_now() is None
