"""Uploads to waveforms: one bounded copy to disk, one ffmpeg decode with a timeout.

Every later stage (VAD, Whisper, aligner, diarizer) receives the same 16 kHz mono float32
array, so a file is decoded exactly once per request. A WAV that already is 16 kHz mono
16-bit PCM — what recorders and telephony pipelines often send — is read directly: the
same samples ffmpeg would give, without starting a process (a tenth of a second or more
on a long file, spent before any GPU work can start).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from app.errors import EmptyUpload, UndecodableAudio, UploadTooLarge

SAMPLE_RATE = 16_000
_COPY_CHUNK = 1 << 20


@contextmanager
def upload_on_disk(source: BinaryIO, *, max_bytes: int, temp_dir: Path | None = None) -> Iterator[Path]:
    """Copy an upload into a named temporary file and delete it when the block ends.

    ffmpeg needs a seekable path (MP4/M4A keep their index at the end), and the copy is
    where the size limit is enforced chunk by chunk, so an oversize body is never held
    in memory. The file is removed on every path out, success or error.
    """
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".bin", dir=temp_dir)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as sink:
            written = 0
            while chunk := source.read(_COPY_CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise UploadTooLarge(f"The upload exceeds the limit of {max_bytes // (1024 * 1024)} MiB.")
                sink.write(chunk)
        if written == 0:
            raise EmptyUpload("The uploaded file is empty.")
        yield path
    finally:
        path.unlink(missing_ok=True)


def decode_audio(path: Path, *, timeout_s: float, max_seconds: float, ffmpeg: str = "ffmpeg") -> np.ndarray:
    """Decode any ffmpeg-readable file to 16 kHz mono float32 (plain 16 kHz mono WAV directly)."""
    audio = _read_plain_wav(path)
    if audio is None:
        return decode_with_ffmpeg(path, timeout_s=timeout_s, max_seconds=max_seconds, ffmpeg=ffmpeg)
    if audio.size > max_seconds * SAMPLE_RATE:
        raise UploadTooLarge(f"The audio is longer than the limit of {max_seconds:g} s.")
    return audio


def decode_with_ffmpeg(path: Path, *, timeout_s: float, max_seconds: float, ffmpeg: str = "ffmpeg") -> np.ndarray:
    """Decode any ffmpeg-readable file to 16 kHz mono float32.

    A zero-length but valid file decodes to an empty array (not an error). Audio longer
    than ``max_seconds`` is refused; ffmpeg stops one second past the limit so a huge
    file never fills memory before we can say so.
    """
    command = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "0",
        "-i", str(path),
        "-vn", "-sn", "-dn", "-t", f"{max_seconds + 1:.3f}",
        "-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-",
    ]  # fmt: skip
    try:
        completed = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise UndecodableAudio(f"Decoding the file took longer than {timeout_s:g} s.") from exc
    if completed.returncode != 0:
        reason = completed.stderr.decode("utf-8", "replace").replace(str(path), "<upload>").strip()
        last_line = reason.splitlines()[-1] if reason else "unknown error"
        raise UndecodableAudio(f"The file could not be decoded as audio ({last_line}).")
    audio = np.frombuffer(completed.stdout, dtype=np.float32).copy()
    if audio.size > max_seconds * SAMPLE_RATE:
        raise UploadTooLarge(f"The audio is longer than the limit of {max_seconds:g} s.")
    return audio


def _read_plain_wav(path: Path) -> np.ndarray | None:
    """The samples of a complete 16 kHz mono 16-bit PCM WAV; None for anything else (ffmpeg's job).

    A file whose data is shorter than its header says, or any header the ``wave`` module
    does not read, goes to ffmpeg, which decodes or refuses it as for every other format.
    """
    try:
        with wave.open(str(path)) as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
                return None
            expected = wav.getnframes()
            data = wav.readframes(expected)
    except (wave.Error, EOFError, ValueError):
        return None
    if len(data) != 2 * expected:
        return None
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def read_pcm16_wav(path: Path) -> np.ndarray:
    """A 16 kHz mono 16-bit WAV as float32 in [-1, 1), read directly (no ffmpeg, for bundled clips)."""
    audio = _read_plain_wav(path)
    if audio is None:
        raise ValueError(f"{path} is not a complete 16 kHz mono 16-bit PCM WAV")
    return audio
