"""Decompression bombs: small files that decode to hours of audio, some hiding their length."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np


def one_hz_wav(path: Path, samples: int = 20_000) -> Path:
    """A 40 KB WAV at a 1 Hz sample rate: 5.6 hours once resampled to 16 kHz."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(1)
        wav.writeframes((np.sin(np.arange(samples)) * 8000).astype("<i2").tobytes())
    return path


def silent_flac(path: Path, seconds: int = 18_000) -> Path:
    """About 3.4 MB of FLAC that decodes to five hours of silence."""
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", str(seconds),
         "-c:a", "flac", str(path)],
        check=True, timeout=300,
    )  # fmt: skip
    return path


def flac_without_total(source: Path, target: Path) -> Path:
    """``source`` with STREAMINFO's total samples set to 0, FLAC's "unknown": a bomb hiding its length."""
    data = bytearray(source.read_bytes())
    data[18:26] = (int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)).to_bytes(8, "big")
    target.write_bytes(bytes(data))
    return target


def silent_opus(path: Path, seconds: int = 3600) -> Path:
    """A few hundred KB of Ogg Opus that decodes to an hour of silence (its length is in the container)."""
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", str(seconds),
         "-c:a", "libopus", "-b:a", "6k", str(path)],
        check=True, timeout=300,
    )  # fmt: skip
    return path
