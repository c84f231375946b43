"""Uploads to waveforms: one streaming ffmpeg decode, bounded in time, length and memory.

Every later stage (VAD, Whisper, aligner, diarizer) receives the same 16 kHz mono float32
array, so a file is decoded exactly once per request. A WAV that already is 16 kHz mono
16-bit PCM — what recorders and telephony pipelines often send — is read directly: the
same samples ffmpeg would give, without starting a process (a tenth of a second or more
on a long file, spent before any GPU work can start).
"""

from __future__ import annotations

import os
import select
import subprocess
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from app.control.budget import Reservation
from app.engine.audio_length import declared_seconds, ffprobe_beside
from app.errors import DeclaredTooLong, UndecodableAudio, UploadTooLarge

SAMPLE_RATE = 16_000
_BYTES_PER_SAMPLE = 4  # float32
_READ_CHUNK = 1 << 20
_FFMPEG_ENV = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LC_ALL": "C"}


def decode_audio(
    path: Path,
    *,
    timeout_s: float,
    max_seconds: float,
    memory: Reservation | None = None,
    ffmpeg: str = "ffmpeg",
) -> np.ndarray:
    """Decode any ffmpeg-readable file to 16 kHz mono float32 (plain 16 kHz mono WAV directly).

    The samples are reserved from ``memory`` as they arrive: a request that would push the
    service past its audio budget is refused (503) instead of holding more. A file whose
    header declares more than ``max_seconds`` is refused before any of it is decoded.
    """
    refuse_declared_length(path, max_seconds=max_seconds, ffmpeg=ffmpeg)
    audio = _read_plain_wav(path, max_seconds=max_seconds, memory=memory)
    if audio is None:
        return decode_with_ffmpeg(path, timeout_s=timeout_s, max_seconds=max_seconds, memory=memory, ffmpeg=ffmpeg)
    return audio


def refuse_declared_length(path: Path, *, max_seconds: float, ffmpeg: str = "ffmpeg") -> None:
    """UploadTooLarge when the file's header declares more than ``max_seconds`` (audio_length.py)."""
    declared = declared_seconds(path, ffprobe=ffprobe_beside(ffmpeg))
    if declared is not None and declared > max_seconds:
        raise DeclaredTooLong(
            f"The audio is longer than the limit of {max_seconds:g} s (its header says {declared:.0f} s).",
            declared_s=declared,
        )


def check_decodable(path: Path, *, timeout_s: float, max_seconds: float, ffmpeg: str = "ffmpeg") -> None:
    """UndecodableAudio unless the file's first second decodes, UploadTooLarge when its header is
    over the limit (a job's upload, before it is stored)."""
    refuse_declared_length(path, max_seconds=max_seconds, ffmpeg=ffmpeg)
    decode_with_ffmpeg(path, timeout_s=timeout_s, max_seconds=2.0, ffmpeg=ffmpeg, first_seconds=1.0)


def decode_with_ffmpeg(
    path: Path,
    *,
    timeout_s: float,
    max_seconds: float,
    memory: Reservation | None = None,
    ffmpeg: str = "ffmpeg",
    first_seconds: float | None = None,
) -> np.ndarray:
    """Decode any ffmpeg-readable file to 16 kHz mono float32, streaming.

    ffmpeg's output is read as it is produced into one growing buffer that becomes the
    array (no copy), and ffmpeg is stopped the moment the output passes ``max_seconds``:
    a decompression bomb (a tiny file that decodes to hours) costs at most the limit's
    worth of samples, once, and answers 413 at once. A zero-length but valid file decodes
    to an empty array (not an error).
    """
    limit_bytes = int(max_seconds * SAMPLE_RATE) * _BYTES_PER_SAMPLE
    command = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "0",
        "-i", str(path),
        "-vn", "-sn", "-dn",
        *(("-t", f"{first_seconds:g}") if first_seconds is not None else ()),
        "-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-",
    ]  # fmt: skip
    deadline = time.monotonic() + timeout_s
    buffer = bytearray()
    with tempfile.TemporaryFile() as errors:
        # Untrusted input: ffmpeg gets no secrets (HF_TOKEN) and nothing else of our environment.
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, env=_FFMPEG_ENV
        )
        assert process.stdout is not None
        try:
            output = process.stdout.fileno()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise UndecodableAudio(f"Decoding the file took longer than {timeout_s:g} s.")
                if not select.select([output], [], [], remaining)[0]:
                    continue
                chunk = os.read(output, _READ_CHUNK)
                if not chunk:
                    break
                if len(buffer) + len(chunk) > limit_bytes:
                    raise UploadTooLarge(f"The audio is longer than the limit of {max_seconds:g} s.")
                if memory is not None:
                    memory.grow(len(chunk))
                buffer += chunk
            returncode = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired as exc:
            raise UndecodableAudio(f"Decoding the file took longer than {timeout_s:g} s.") from exc
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
        if returncode != 0:
            errors.seek(0, os.SEEK_END)
            errors.seek(max(errors.tell() - 4096, 0))
            reason = errors.read().decode("utf-8", "replace").replace(str(path), "<upload>").strip()
            last_line = reason.splitlines()[-1] if reason else "unknown error"
            raise UndecodableAudio(f"The file could not be decoded as audio ({last_line}).")
    usable = len(buffer) - len(buffer) % _BYTES_PER_SAMPLE
    del buffer[usable:]
    return np.frombuffer(buffer, dtype=np.float32)


def _read_plain_wav(
    path: Path, *, max_seconds: float | None = None, memory: Reservation | None = None
) -> np.ndarray | None:
    """The samples of a complete 16 kHz mono 16-bit PCM WAV; None for anything else (ffmpeg's job).

    A file whose data is shorter than its header says, or any header the ``wave`` module
    does not read, goes to ffmpeg, which decodes or refuses it as for every other format.
    The length is checked against ``max_seconds`` from the header, before reading.
    """
    try:
        with wave.open(str(path)) as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
                return None
            expected = wav.getnframes()
            if 2 * expected > path.stat().st_size:
                return None  # a header that claims more than the file holds
            if max_seconds is not None and expected > max_seconds * SAMPLE_RATE:
                raise UploadTooLarge(f"The audio is longer than the limit of {max_seconds:g} s.")
            if memory is not None:
                memory.grow(expected * _BYTES_PER_SAMPLE)
            data = wav.readframes(expected)
    except (wave.Error, EOFError, ValueError):
        return None
    if len(data) != 2 * expected:
        return None
    audio = np.frombuffer(data, dtype="<i2").astype(np.float32)
    audio /= 32768.0
    return audio


def read_pcm16_wav(path: Path) -> np.ndarray:
    """A 16 kHz mono 16-bit WAV as float32 in [-1, 1), read directly (no ffmpeg, for bundled clips)."""
    audio = _read_plain_wav(path)
    if audio is None:
        raise ValueError(f"{path} is not a complete 16 kHz mono 16-bit PCM WAV")
    return audio
