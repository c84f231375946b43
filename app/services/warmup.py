"""Run real speech through every loaded stage before the service calls itself ready.

The first call of each stage pays for lazy imports, allocator growth and — on GPUs the
installed CTranslate2 has no SASS for — the JIT compilation of every kernel. Warming up with
the shapes requests will use moves all of that out of the first user's request. The clip is
the two-speaker call that ships inside pyannote.audio, so diarization has speakers to find.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.services.audio import SAMPLE_RATE, read_pcm16_wav
from app.services.package_files import package_file
from app.services.pipeline import TranscribeOptions, Transcript, TranscriptionPipeline
from app.services.timing import StepTimer
from app.services.vad import SpeechChunk

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmupReport:
    total_s: float
    asr_s: float
    alignment_s: float
    diarization_s: float
    audio_s: float


def sample_speech_path() -> Path:
    # Located, not imported: importing pyannote.audio costs seconds (Lightning), which a
    # service running Silero VAD and no diarization never needs to pay.
    return package_file("pyannote.audio", "sample/sample.wav", ships="the sample call that is the warmup clip")


def sample_speech() -> np.ndarray:
    """The sample as float32: it is 16 kHz mono 16-bit PCM, so no decoder is needed."""
    return read_pcm16_wav(sample_speech_path())


def warm_up(pipeline: TranscriptionPipeline, device: str, batch_size: int) -> WarmupReport:
    """Every stage once on the sample; on a GPU, Whisper once more on a full batch of windows."""
    clip = sample_speech()
    started = time.perf_counter()
    transcript = pipeline.run(clip, TranscribeOptions(batch_size=batch_size))
    t = transcript.timings
    asr_s = t.get("vad", 0.0) + t.get("language_detection", 0.0) + t.get("asr", 0.0)
    alignment_s = t.get("alignment", 0.0)
    if device == "cuda" and batch_size > 1:
        batch_asr_s, batch_alignment_s = _warm_full_batch(pipeline, clip, batch_size, transcript)
        asr_s += batch_asr_s
        alignment_s += batch_alignment_s
    report = WarmupReport(
        total_s=round(time.perf_counter() - started, 3),
        asr_s=round(asr_s, 3),
        alignment_s=round(alignment_s, 3),
        diarization_s=t.get("diarization", 0.0),
        audio_s=round(clip.shape[0] / SAMPLE_RATE, 1),
    )
    logger.info(
        "Warmup: total %.2f s (asr %.2f s, alignment %.2f s, diarization %.2f s)",
        report.total_s,
        report.asr_s,
        report.alignment_s,
        report.diarization_s,
    )
    return report


def _warm_full_batch(
    pipeline: TranscriptionPipeline, clip: np.ndarray, batch_size: int, first: Transcript
) -> tuple[float, float]:
    """Decode ``batch_size`` windows at once, the shape long requests use.

    GPU libraries choose (and the JIT compiles) kernels per problem size, so a batch of one
    does not warm a batch of sixteen. The windows are the sample's speech chunks repeated:
    running VAD over minutes of tiled audio would only add time (Silero runs on one CPU core).
    """
    chunks = pipeline.vad(clip)
    if not chunks:
        return 0.0, 0.0
    copies = -(-batch_size // len(chunks))
    period = clip.shape[0] / SAMPLE_RATE
    audio = np.tile(clip, copies)
    windows = [SpeechChunk(c.start + k * period, c.end + k * period) for k in range(copies) for c in chunks]
    language = first.language or "en"
    timer = StepTimer()
    with timer("asr"):
        segments = pipeline.whisper.transcribe(
            audio,
            windows[:batch_size],
            language=language,
            task="transcribe",
            initial_prompt=None,
            batch_size=batch_size,
        )
    if first.word_time_source == "whisper":
        with timer("alignment"):
            pipeline.whisper.time_words(audio, segments, language=language, task="transcribe", batch_size=batch_size)
    return timer.timings.get("asr", 0.0), timer.timings.get("alignment", 0.0)
