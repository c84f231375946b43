"""Reference clips cut from the sample call, as the known-speaker and voice-book tests send them."""

from __future__ import annotations

import base64

import numpy as np

from app.engine.audio import read_pcm16_wav
from app.engine.speakers.references import wav_bytes
from app.serving.warmup import sample_speech_path


def wav(seconds: float, offset: float = 6.0, silent: bool = False) -> bytes:
    """A clip of the sample call's speech (or silence), as 16 kHz WAV bytes."""
    audio = read_pcm16_wav(sample_speech_path())[int(offset * 16000) : int((offset + seconds) * 16000)]
    return wav_bytes(np.zeros_like(audio) if silent else audio)


def data_url(content: bytes) -> str:
    return "data:audio/wav;base64," + base64.b64encode(content).decode()
