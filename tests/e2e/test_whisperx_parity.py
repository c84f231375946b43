"""Our batched decoding is WhisperX's: same windows, same text, same scores as whisperx.load_model."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.decoding import Decoding
from app.engine.vad import load_speech_detector
from app.engine.whisper import fallback
from app.engine.whisper.ctranslate2 import CTranslate2Engine
from app.engine.whisper.sources import resolve_whisper_source
from app.engine.whisper.stage import Whisper
from app.serving.warmup import sample_speech


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return resolve_whisper_source("bundled-base", "cpu", tmp_path_factory.mktemp("models"))


def test_same_result_as_direct_whisperx(source):
    import whisperx

    audio = np.tile(sample_speech(), 2)
    direct = whisperx.load_model(source.location, "cpu", compute_type="int8", threads=2, language="en")
    expected = direct.transcribe(audio, batch_size=2, language="en")["segments"]

    engine = Whisper(
        CTranslate2Engine.load(
            source, device="cpu", compute_type="int8", cpu_threads=2, download_root="unused", hf_token=None
        )
    )
    chunks = load_speech_detector("pyannote", "cpu")(audio)
    ours = engine.transcribe(audio, chunks, Decoding("en", "transcribe", None, fallback.ONCE, 2))

    assert [(s.start, s.end, s.text) for s in ours] == [(s["start"], s["end"], s["text"]) for s in expected]
    assert [s.avg_logprob for s in ours] == pytest.approx([s["avg_logprob"] for s in expected], abs=1e-6)


def test_silero_finds_the_same_speech(source):
    audio = sample_speech()
    [pyannote_chunk] = load_speech_detector("pyannote", "cpu")(audio)
    [silero_chunk] = load_speech_detector("silero", "cpu")(audio)
    assert abs(silero_chunk.start - pyannote_chunk.start) < 0.5
    assert abs(silero_chunk.end - pyannote_chunk.end) < 0.6


def test_out_of_memory_mid_request_gives_the_same_text(whisper, monkeypatch):
    """Injected CUDA OOM for any batch above one window: the request still completes, unchanged."""
    audio = np.tile(sample_speech(), 3)
    chunks = load_speech_detector("pyannote", "cpu")(audio)
    decoding = Decoding("en", "transcribe", None, fallback.ONCE, 3)
    expected = whisper.transcribe(audio, chunks, decoding)

    decode = whisper.engine.decode

    def decode_or_oom(features, prompt, sampling, *, logprobs=False):
        if features.shape[0] > 1:
            raise RuntimeError("CUDA failed with error out of memory")
        return decode(features, prompt, sampling, logprobs=logprobs)

    monkeypatch.setattr(whisper.engine, "decode", decode_or_oom)
    assert [s.text for s in whisper.transcribe(audio, chunks, decoding)] == [s.text for s in expected]
