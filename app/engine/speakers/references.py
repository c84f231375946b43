"""Known speakers' reference clips: data URLs (as OpenAI's ``known_speaker_references``) to audio.

Each clip is decoded like an upload (ffmpeg, bounded in time and length) and must hold 2–10 s
of sound; anything else is a 422 that names the clip and the speaker.
"""

from __future__ import annotations

import base64
import binascii
import io
import tempfile
import wave
from pathlib import Path

import numpy as np

from app.engine.audio import SAMPLE_RATE, decode_audio
from app.engine.speakers.known import KnownSpeaker
from app.errors import DeclaredTooLong, InvalidParameter, UndecodableAudio, UploadTooLarge

MIN_REFERENCE_S = 2.0
MAX_REFERENCE_S = 10.0
_TOLERANCE_S = 0.25  # encoders pad or trim a few frames: a "10 s" clip may decode to 10.02 s
_SILENCE_RMS = 1e-3  # under this (-60 dBFS) a clip has no voice to compare


def decode_references(
    known: tuple[tuple[str, str], ...], *, timeout_s: float, ffmpeg: str, temp_dir: Path | None = None
) -> list[KnownSpeaker]:
    """The clips of ``known`` ((name, data URL) pairs) as 16 kHz audio; InvalidParameter for a bad one."""
    return [_decode(index, name, url, timeout_s, ffmpeg, temp_dir) for index, (name, url) in enumerate(known)]


def decode_reference_file(path: Path, which: str, param: str, *, timeout_s: float, ffmpeg: str) -> np.ndarray:
    """A reference clip's file as 16 kHz audio, checked: 2–10 s of sound (InvalidParameter naming ``which``)."""
    try:
        audio = decode_audio(path, timeout_s=timeout_s, max_seconds=MAX_REFERENCE_S + _TOLERANCE_S, ffmpeg=ffmpeg)
    except UndecodableAudio:
        raise InvalidParameter(f"{which} is not audio that can be decoded.", param=param) from None
    except UploadTooLarge as exc:
        # Say which: a short clip whose header claims hours is refused on the header's word.
        said = f" (its header says {exc.declared_s:.0f} s)" if isinstance(exc, DeclaredTooLong) else ""
        raise InvalidParameter(
            f"{which} is longer than {MAX_REFERENCE_S:g} s{said}: send 2–10 s of this voice alone.", param=param
        ) from None
    seconds = audio.shape[0] / SAMPLE_RATE
    if seconds < MIN_REFERENCE_S - _TOLERANCE_S:
        raise InvalidParameter(
            f"{which} is {seconds:.1f} s long, too short to know a voice by: send 2–10 s of it.", param=param
        )
    if float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) < _SILENCE_RMS:
        raise InvalidParameter(f"{which} is silent.", param=param)
    return audio


def wav_bytes(audio: np.ndarray) -> bytes:
    """16 kHz float audio as a 16-bit mono WAV file's bytes."""
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(SAMPLE_RATE)
        file.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def wav_data_url(audio: np.ndarray) -> str:
    """16 kHz audio as a 16-bit WAV data URL (how the voice book stores a clip)."""
    return data_url(wav_bytes(audio), "audio/wav")


def data_url(content: bytes, media_type: str | None) -> str:
    """A clip sent as a file part, as the data URL a form field would carry."""
    return f"data:{media_type or 'application/octet-stream'};base64,{base64.b64encode(content).decode()}"


def _decode(index: int, name: str, url: str, timeout_s: float, ffmpeg: str, temp_dir: Path | None) -> KnownSpeaker:
    param = f"known_speaker_references[{index}]"
    which = f"The reference clip for {name!r} ({param})"
    header, _, payload = url.partition(",")
    if not header.startswith("data:") or not header.endswith(";base64"):
        raise InvalidParameter(f"{which} is not a base64 data URL (data:audio/wav;base64,…).", param=param)
    try:
        content = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter(f"{which} is not valid base64.", param=param) from None
    if not content:
        raise InvalidParameter(f"{which} is empty.", param=param)
    with tempfile.NamedTemporaryFile(prefix="reference-", suffix=".bin", dir=temp_dir) as file:
        file.write(content)
        file.flush()
        audio = decode_reference_file(Path(file.name), which, param, timeout_s=timeout_s, ffmpeg=ffmpeg)
    return KnownSpeaker(name, audio)
