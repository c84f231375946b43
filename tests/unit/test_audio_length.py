"""Lengths read from headers: exact for WAV and FLAC, ffprobe's for the rest, None when unknown."""

from __future__ import annotations

import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from app.engine.audio import check_decodable, decode_audio
from app.engine.audio_length import declared_seconds, ffprobe_beside
from app.errors import UploadTooLarge
from tests.support.bombs import flac_without_total, one_hz_wav

FFPROBE = ffprobe_beside("ffmpeg")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, timeout=120)


def tone(path: Path, seconds: float, *codec: str, rate: int = 16000) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}:duration={seconds}", *codec, str(path))
    return path


def test_a_one_hz_wav_declares_its_hours(tmp_path: Path) -> None:
    assert declared_seconds(one_hz_wav(tmp_path / "bomb.wav")) == pytest.approx(20_000)


@pytest.mark.parametrize(
    ("name", "codec", "rate"),
    [
        ("pcm16.wav", ("-c:a", "pcm_s16le"), 16000),
        ("float.wav", ("-c:a", "pcm_f32le"), 44100),
        ("pcm24-stereo.wav", ("-c:a", "pcm_s24le", "-ac", "2"), 48000),
        ("ulaw.wav", ("-c:a", "pcm_mulaw"), 8000),
        ("five-channels.wav", ("-c:a", "pcm_s16le", "-ac", "5"), 22050),  # WAVE_FORMAT_EXTENSIBLE
        ("speech.flac", ("-c:a", "flac"), 16000),
        ("hi-res.flac", ("-c:a", "flac", "-sample_fmt", "s32"), 96000),
    ],
)
def test_wav_and_flac_headers_give_the_exact_length(tmp_path: Path, name: str, codec: tuple[str, ...], rate: int):
    path = tone(tmp_path / name, 7.25, *codec, rate=rate)
    assert declared_seconds(path) == pytest.approx(7.25, abs=0.01)


@pytest.mark.parametrize("name", ["speech.ogg", "speech.m4a", "speech.mp3", "speech.webm"])
def test_other_containers_are_probed(tmp_path: Path, name: str) -> None:
    path = tone(tmp_path / name, 12.0)
    assert FFPROBE is not None
    assert declared_seconds(path, ffprobe=FFPROBE) == pytest.approx(12.0, abs=0.2)
    assert declared_seconds(path) is None, "without ffprobe nothing is guessed"


def test_a_length_estimated_from_the_bitrate_is_not_trusted(tmp_path: Path) -> None:
    path = tone(tmp_path / "no-xing.mp3", 12.0, "-c:a", "libmp3lame", "-write_xing", "0")
    assert declared_seconds(path, ffprobe=FFPROBE) is None


def test_a_header_that_claims_more_than_the_file_holds_counts_what_is_there(tmp_path: Path) -> None:
    path = tone(tmp_path / "cut.wav", 10.0, "-c:a", "pcm_s16le")
    data = bytearray(path.read_bytes())
    index = data.index(b"data")
    data[index + 4 : index + 8] = struct.pack("<I", 0xFFFFFFFF)  # a streamed WAV's "unknown" size
    cut = tmp_path / "claims-more.wav"
    cut.write_bytes(bytes(data[: len(data) // 2]))
    assert declared_seconds(cut) == pytest.approx(5.0, abs=0.05)


@pytest.mark.parametrize("content", [b"", b"RIFF", b"RIFF\x00\x00\x00\x00WAVE", b"fLaC\x00", b"\x00" * 100])
def test_broken_or_foreign_headers_declare_nothing(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.bin"
    path.write_bytes(content)
    assert declared_seconds(path, ffprobe=FFPROBE) is None


def test_a_flac_with_unknown_total_declares_nothing(tmp_path: Path) -> None:
    path = flac_without_total(tone(tmp_path / "a.flac", 2.0, "-c:a", "flac"), tmp_path / "unknown.flac")
    assert declared_seconds(path) is None


def test_decoding_refuses_a_long_header_before_reading_a_sample(tmp_path: Path) -> None:
    bomb = one_hz_wav(tmp_path / "bomb.wav")
    with pytest.raises(UploadTooLarge, match="header says 20000 s"):
        decode_audio(bomb, timeout_s=30, max_seconds=4 * 3600)
    with pytest.raises(UploadTooLarge):
        check_decodable(bomb, timeout_s=30, max_seconds=4 * 3600)
    ok = tmp_path / "ok.wav"
    with wave.open(str(ok), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.zeros(16000, dtype="<i2").tobytes())
    assert decode_audio(ok, timeout_s=30, max_seconds=2).shape == (16000,)
