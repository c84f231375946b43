import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from app.control.budget import ByteBudget
from app.engine.audio import SAMPLE_RATE, decode_audio, decode_with_ffmpeg
from app.errors import Busy, UndecodableAudio, UploadTooLarge


def _decode(path: Path, **limits: float) -> np.ndarray:
    return decode_audio(path, timeout_s=limits.get("timeout_s", 30), max_seconds=limits.get("max_seconds", 3600))


def test_sample_decodes_to_16k_mono_float32(sample_wav):
    audio = _decode(sample_wav)
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    assert audio.shape[0] == 30 * SAMPLE_RATE
    assert 0.01 < float(np.abs(audio).max()) <= 1.0


def test_compressed_formats_decode(sample_wav, tmp_path):
    ogg = tmp_path / "sample.ogg"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(sample_wav), "-c:a", "libopus", str(ogg)], check=True)
    audio = _decode(ogg)
    assert abs(audio.shape[0] / SAMPLE_RATE - 30.0) < 0.1


def test_text_is_not_audio(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not audio\n" * 100)
    with pytest.raises(UndecodableAudio, match="could not be decoded"):
        _decode(path)


def test_error_message_does_not_leak_the_temp_path(tmp_path):
    path = tmp_path / "secret-name.bin"
    path.write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(UndecodableAudio) as caught:
        _decode(path)
    assert "secret-name" not in caught.value.message


def test_truncated_wav_is_decoded_or_refused_cleanly(sample_wav, tmp_path):
    truncated = tmp_path / "cut.wav"
    truncated.write_bytes(sample_wav.read_bytes()[:30])  # inside the header
    with pytest.raises(UndecodableAudio):
        _decode(truncated)


def test_zero_length_wav_is_empty_not_an_error(sample_wav, tmp_path):
    empty = tmp_path / "empty.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(sample_wav), "-t", "0", str(empty)], check=True)
    assert _decode(empty).size == 0


def test_audio_over_the_duration_limit_is_refused(sample_wav):
    with pytest.raises(UploadTooLarge, match="longer than"):
        _decode(sample_wav, max_seconds=10)


def test_decode_timeout_is_a_client_error(sample_wav):
    with pytest.raises(UndecodableAudio, match="longer than"):
        decode_with_ffmpeg(sample_wav, timeout_s=0.001, max_seconds=3600)


def test_plain_16k_mono_wav_is_read_directly_with_ffmpegs_samples(sample_wav, tmp_path):
    direct = decode_audio(sample_wav, timeout_s=30, max_seconds=3600, ffmpeg=str(tmp_path / "no-ffmpeg-here"))
    np.testing.assert_array_equal(direct, decode_with_ffmpeg(sample_wav, timeout_s=30, max_seconds=3600))


@pytest.mark.parametrize("convert", [["-ac", "2"], ["-ar", "8000"], ["-c:a", "pcm_f32le"]])
def test_other_wavs_go_to_ffmpeg(sample_wav, tmp_path, convert):
    other = tmp_path / "other.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(sample_wav), *convert, str(other)], check=True)
    with pytest.raises(FileNotFoundError):  # proves the ffmpeg path was taken
        decode_audio(other, timeout_s=30, max_seconds=3600, ffmpeg=str(tmp_path / "no-ffmpeg-here"))
    assert abs(_decode(other).shape[0] / SAMPLE_RATE - 30.0) < 0.1


def test_wav_with_missing_data_goes_to_ffmpeg(sample_wav, tmp_path):
    cut = tmp_path / "cut-data.wav"
    cut.write_bytes(sample_wav.read_bytes()[: 44 + 16000 * 2 * 5])  # header says 30 s, 5 s present
    audio = _decode(cut)
    assert abs(audio.shape[0] / SAMPLE_RATE - 5.0) < 0.1


def test_plain_wav_over_the_duration_limit_is_refused(sample_wav):
    with pytest.raises(UploadTooLarge, match="longer than"):
        decode_audio(sample_wav, timeout_s=30, max_seconds=10)


def _one_hz_wav(path: Path, samples: int) -> Path:
    """A WAV at 1 Hz: a few KB that resample to hours at 16 kHz (a decompression bomb)."""
    data = (np.sin(np.arange(samples)) * 10000).astype("<i2").tobytes()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(1)
        wav.writeframes(data)
    return path


def test_a_decompression_bomb_costs_at_most_the_limit_once(tmp_path):
    bomb = _one_hz_wav(tmp_path / "bomb.wav", 20_000)  # 40 KB, 5.6 h at 16 kHz
    budget = ByteBudget("test", 1 << 40)
    with pytest.raises(UploadTooLarge, match="longer than the limit of 600 s"), budget.reservation() as memory:
        decode_audio(bomb, timeout_s=60, max_seconds=600, memory=memory)
    # Refused while decoding, not after: never more than the limit's worth of samples was held.
    assert budget.peak <= 600 * SAMPLE_RATE * 4
    assert budget.used == 0, "everything is given back"


def test_the_memory_budget_refuses_what_does_not_fit(sample_wav, tmp_path):
    ogg = tmp_path / "sample.ogg"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(sample_wav), "-c:a", "libopus", str(ogg)], check=True)
    budget = ByteBudget("decoded-audio memory", 10 * SAMPLE_RATE * 4)  # 10 s of audio
    for path in (sample_wav, ogg):  # the WAV fast path reserves from the header, ffmpeg as it streams
        with pytest.raises(Busy, match="decoded-audio memory budget") as refused, budget.reservation() as memory:
            decode_audio(path, timeout_s=30, max_seconds=3600, memory=memory)
        assert refused.value.headers == {"Retry-After": "5"}
        assert budget.used == 0
    roomy = ByteBudget("decoded-audio memory", 40 * SAMPLE_RATE * 4)
    with roomy.reservation() as memory:
        assert decode_audio(ogg, timeout_s=30, max_seconds=3600, memory=memory).size > 29 * SAMPLE_RATE
        assert roomy.used == memory.held >= 29 * SAMPLE_RATE * 4
    assert roomy.used == 0


def test_ffmpeg_gets_no_secrets(tmp_path, monkeypatch):
    """ffmpeg parses untrusted uploads: it runs with PATH and a locale, nothing else."""
    spy = tmp_path / "ffmpeg"
    spy.write_text(f"#!/bin/sh\nenv > {tmp_path}/env.txt\nexit 1\n")
    spy.chmod(0o755)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    with pytest.raises(UndecodableAudio):
        decode_with_ffmpeg(tmp_path / "x.bin", timeout_s=10, max_seconds=60, ffmpeg=str(spy))
    seen = (tmp_path / "env.txt").read_text()
    assert "hf_secret" not in seen and "HF_TOKEN" not in seen


def test_ffmpeg_is_installed():
    assert shutil.which("ffmpeg"), "ffmpeg is a runtime dependency (apt install ffmpeg)"


def test_the_warmup_reader_matches_ffmpeg(sample_wav):
    from app.serving.warmup import sample_speech

    np.testing.assert_array_equal(sample_speech(), decode_with_ffmpeg(sample_wav, timeout_s=30, max_seconds=3600))


def test_reading_the_warmup_clip_does_not_import_pyannote():
    import os
    import sys

    code = (
        "import sys\n"
        "from app.serving.warmup import sample_speech\n"
        "sample_speech()\n"
        "print('pyannote.audio' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert result.stdout.strip() == "False"
