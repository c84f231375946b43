"""How long a file says it is, read from its header before anything is decoded.

A 40 KB WAV that declares a 1 Hz sample rate is 5.6 hours once resampled to 16 kHz, and a few
MB of FLAC can hold five hours of silence. The streaming decode stops either at the length
limit, but only after holding the limit's worth of samples (a GB at the default 4 h).
Containers that state their length let the service refuse such a file at once:

- WAV: the data chunk's size (capped at what the file really holds) over the frame size and
  the sample rate — exact;
- FLAC: STREAMINFO's total samples over its sample rate — exact;
- anything else: ffprobe's format duration, unless ffprobe says it only estimated it from the
  bitrate (VBR MP3 without a Xing header), where it can be far off.

A header can lie the other way (claim less than the file holds): the streaming decode's limit
stays the guard for those.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import BinaryIO

_FFMPEG_ENV = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LC_ALL": "C"}
_PROBE_TIMEOUT_S = 10.0
_WAVE_PCM_LIKE = {1, 3, 0xFFFE}  # PCM, IEEE float, extensible: frames are block_align bytes


def declared_seconds(path: Path, *, ffprobe: str | None = None) -> float | None:
    """The duration the file's header declares; None when it declares none (or cannot be read)."""
    try:
        with path.open("rb") as audio:
            head = audio.read(12)
            audio.seek(0)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                return _wav_seconds(audio, path.stat().st_size)
            if head[:4] == b"fLaC" or head[:3] == b"ID3":
                flac = _flac_seconds(audio)
                if flac is not None or head[:4] == b"fLaC":
                    return flac
    except (OSError, struct.error):
        return None
    return _probed_seconds(path, ffprobe) if ffprobe else None


def ffprobe_beside(ffmpeg: str) -> str | None:
    """The ffprobe that comes with ``ffmpeg`` (same folder, or on PATH); None without one."""
    folder = os.path.dirname(ffmpeg)
    candidate = os.path.join(folder, "ffprobe") if folder else "ffprobe"
    return shutil.which(candidate)


def _wav_seconds(audio: BinaryIO, file_size: int) -> float | None:
    read = audio.read
    read(12)
    position = 12
    rate = block_align = byte_rate = fmt = None
    while position + 8 <= file_size:
        chunk_id, size = struct.unpack("<4sI", read(8))
        position += 8
        if chunk_id == b"fmt ":
            body = read(min(size, 40))
            fmt, _channels, rate, byte_rate, block_align = struct.unpack("<HHIIH", body[:14])
            read(max(size - len(body), 0) + (size & 1))
        elif chunk_id == b"data":
            if rate is None:
                return None
            available = min(size, file_size - position)  # a header that claims more than the file holds
            if fmt in _WAVE_PCM_LIKE and rate and block_align:
                return available / block_align / rate
            return available / byte_rate if byte_rate else None
        else:
            audio.seek(size + (size & 1), os.SEEK_CUR)
        position += size + (size & 1)
    return None


def _flac_seconds(audio: BinaryIO) -> float | None:
    read = audio.read
    head = read(10)
    if head[:3] == b"ID3":  # an ID3v2 tag in front: its size is four 7-bit bytes
        size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        audio.seek(10 + size)
        head = read(4)
        if head != b"fLaC":
            return None
    else:
        audio.seek(4)
    block_header = read(4)
    if len(block_header) < 4 or block_header[0] & 0x7F != 0:  # STREAMINFO comes first
        return None
    info = read(34)
    if len(info) < 18:
        return None
    packed = int.from_bytes(info[10:18], "big")
    rate = packed >> 44
    total = packed & ((1 << 36) - 1)
    if not rate or not total:  # 0 total samples: "unknown" (a streamed encode)
        return None
    return total / rate


def _probed_seconds(path: Path, ffprobe: str) -> float | None:
    command = [
        ffprobe, "-v", "warning", "-hide_banner", "-show_entries", "format=duration",
        "-of", "default=noprint_wrappers=1:nokey=1", str(path),
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            env=_FFMPEG_ENV,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or b"Estimating duration from bitrate" in done.stderr:
        return None
    try:
        seconds = float(done.stdout.decode().strip().splitlines()[0])
    except (ValueError, IndexError):  # "N/A": the container does not say
        return None
    return seconds if seconds > 0 else None
