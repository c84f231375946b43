"""Run real speech through every loaded stage before the service calls itself ready.

The first call of each stage pays for lazy imports, allocator growth and — on GPUs the
installed CTranslate2 has no SASS for — the JIT compilation of every kernel. Warming up with
the shapes requests will use moves all of that out of the first user's request. The clip is
the two-speaker call that ships inside pyannote.audio, so diarization has speakers to find.
"""

from __future__ import annotations

import logging
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.services.asr import CHUNK_SECONDS
from app.services.audio import SAMPLE_RATE
from app.services.pipeline import TranscribeOptions, TranscriptionPipeline

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmupReport:
    total_s: float
    asr_s: float
    alignment_s: float
    diarization_s: float
    audio_s: float


def sample_speech_path() -> Path:
    import pyannote.audio

    return Path(pyannote.audio.__file__).parent / "sample" / "sample.wav"


def sample_speech() -> np.ndarray:
    """The sample as float32 in [-1, 1): it is 16 kHz mono 16-bit PCM, so no decoder is needed."""
    with wave.open(str(sample_speech_path())) as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise RuntimeError(f"unexpected format of {sample_speech_path()}")
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def warmup_audio(device: str, batch_size: int) -> np.ndarray:
    """The sample call; on a GPU, tiled so Whisper decodes one full batch of 30 s windows."""
    clip = sample_speech()
    if device != "cuda":
        return clip
    repeats = int(np.ceil(batch_size * CHUNK_SECONDS * SAMPLE_RATE / clip.shape[0]))
    return np.tile(clip, repeats)


def warm_up(pipeline: TranscriptionPipeline, device: str, batch_size: int) -> WarmupReport:
    audio = warmup_audio(device, batch_size)
    transcript = pipeline.run(audio, TranscribeOptions(batch_size=batch_size))
    t = transcript.timings
    report = WarmupReport(
        total_s=t.get("total", 0.0),
        asr_s=round(t.get("vad", 0.0) + t.get("language_detection", 0.0) + t.get("asr", 0.0), 3),
        alignment_s=t.get("alignment", 0.0),
        diarization_s=t.get("diarization", 0.0),
        audio_s=round(audio.shape[0] / SAMPLE_RATE, 1),
    )
    logger.info(
        "Warmup: total %.2f s (asr %.2f s, alignment %.2f s, diarization %.2f s) on %.0f s of speech",
        report.total_s,
        report.asr_s,
        report.alignment_s,
        report.diarization_s,
        report.audio_s,
    )
    return report
