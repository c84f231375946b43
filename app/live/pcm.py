"""A live session's audio: base64 PCM16 from the client, resampled to Whisper's 16 kHz as it arrives.

OpenAI's realtime API sends 24 kHz mono PCM16 (``audio/pcm``); browsers capture at 48 kHz,
telephony at 8 kHz. The resampler keeps its filter state between messages, so audio cut into
messages of any size comes out as if resampled whole (no clicks at message boundaries).
"""

from __future__ import annotations

import base64
import binascii
from math import gcd

import numpy as np

from app.engine.audio import SAMPLE_RATE

# Input rates taken: each a small ratio to 16 kHz, so the polyphase filter stays short.
INPUT_RATES = (8000, 16000, 24000, 32000, 48000)
_TAPS_PER_PHASE = 16


class BadAudio(ValueError):
    """An append's audio that is not base64 PCM16."""


def pcm16_from_base64(text: str) -> np.ndarray:
    """Little-endian 16-bit samples from base64 text."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadAudio("`audio` is not valid base64") from exc
    if len(raw) % 2:
        raise BadAudio("`audio` holds an odd number of bytes: PCM16 samples are 2 bytes each")
    return np.frombuffer(raw, dtype="<i2")


class Resampler:
    """Streaming rational resampler from ``rate`` to 16 kHz (up by L, low-pass, down by M)."""

    def __init__(self, rate: int) -> None:
        if rate not in INPUT_RATES:
            raise ValueError(f"{rate} Hz is not an input rate here ({', '.join(map(str, INPUT_RATES))})")
        divisor = gcd(rate, SAMPLE_RATE)
        self.up, self.down = SAMPLE_RATE // divisor, rate // divisor
        taps = _TAPS_PER_PHASE * max(self.up, self.down) | 1
        if self.up == self.down == 1:
            self._filter = np.ones(1, dtype=np.float32)
        else:
            from scipy.signal import firwin

            cutoff = 1.0 / max(self.up, self.down)  # the lower Nyquist of the two rates
            self._filter = (firwin(taps, cutoff, window=("kaiser", 5.0)) * self.up).astype(np.float32)
        self._history = np.zeros(len(self._filter) - 1, dtype=np.float32)  # the upsampled stream's tail
        self._phase = 0  # where in the upsampled stream the next output sample falls, from its start
        self.delay_s = (len(self._filter) - 1) / 2 / (rate * self.up)  # the filter's latency

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """16 kHz float32 in [-1, 1] for the next PCM16 samples."""
        audio = samples.astype(np.float32) / 32768.0
        if self.up == self.down == 1:
            return audio
        upsampled = np.zeros(len(audio) * self.up, dtype=np.float32)
        upsampled[:: self.up] = audio
        stream = np.concatenate([self._history, upsampled])
        wanted = np.arange(self._phase, len(upsampled), self.down)  # output positions in `upsampled`
        self._phase = int(wanted[-1] + self.down - len(upsampled)) if len(wanted) else self._phase - len(upsampled)
        taps = len(self._filter)
        keep = len(self._history)
        self._history = stream[len(stream) - keep :] if keep else self._history
        if not len(wanted):
            return np.zeros(0, dtype=np.float32)
        # Output k is the filter over the `taps` stream samples ending at its position.
        windows = np.lib.stride_tricks.sliding_window_view(stream, taps)[wanted]
        return (windows @ self._filter[::-1]).astype(np.float32)
