"""Run real speech through every stage: the transcription stages before the service calls itself
ready, the diarizer once it has loaded (after ready: ``ModelLoader``).

The first call of each stage pays for lazy imports, allocator growth and — on GPUs the
installed CTranslate2 has no SASS for — the JIT compilation of every kernel. Warming up with
the shapes requests will use moves all of that out of the first user's request. The clip is
the two-speaker call that ships inside pyannote.audio, so diarization has speakers to find.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.control.cancellation import CancelToken
from app.engine.audio import SAMPLE_RATE, read_pcm16_wav
from app.engine.decoding import Decoding
from app.engine.options import SpeakerHints, TranscribeOptions
from app.engine.pipeline import TranscriptionPipeline
from app.engine.speakers.diarization import Diarizer
from app.engine.vad import SpeechChunk
from app.engine.whisper import fallback
from app.engine.whisper.stage import Whisper
from app.runtime.gpu_streams import side_stream
from app.runtime.package_files import package_file

logger = logging.getLogger(__name__)

GPU_WARMUP_SECONDS = 90  # at 0.5 s per 5 s chunk: both of the offline diarizer's GPU batches full
CPU_WARMUP_SPAN = (6.0, 10.0)  # seconds of the sample with its first words: every stage's code runs


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


def warm_up(pipeline: TranscriptionPipeline, batch_size: int) -> WarmupReport:
    """The transcription stages once on the sample (Whisper's full batches are
    ``warm_whisper_batches``; the diarizer, which loads after, is ``warm_diarizer``).

    On a GPU the sample is repeated to ``GPU_WARMUP_SECONDS`` (a first full batch allocates
    and picks kernels for its shape). On the CPU nothing is compiled and a first request costs
    what the next one does (3.65 against 3.71 s without warmup, bench/cold_start.py), so a
    couple of seconds in English only prove every stage runs: the whole sample would add 2 s
    to the ready time and buy nothing.
    """
    clip = _warmup_clip(pipeline.device)
    started = time.perf_counter()
    language = None if pipeline.device == "cuda" else "en"  # detection: one more encoder pass on a CPU
    # One pass per window: whether the sample's windows pass the quality checks (random weights
    # never do) must not decide how long start-up takes. The retries' sampling has nothing to warm.
    options = TranscribeOptions(batch_size=batch_size, diarize=False, language=language, temperature=[0.0])
    transcript = pipeline.run(clip, pipeline.resolve(options))
    t = transcript.timings
    report = WarmupReport(
        total_s=round(time.perf_counter() - started, 3),
        asr_s=round(t.get("vad", 0.0) + t.get("language_detection", 0.0) + t.get("asr", 0.0), 3),
        alignment_s=round(t.get("alignment", 0.0), 3),
        diarization_s=0.0,
        audio_s=round(clip.shape[0] / SAMPLE_RATE, 1),
    )
    logger.info("Warmup: total %.2f s (asr %.2f s, alignment %.2f s)", report.total_s, report.asr_s, report.alignment_s)
    return report


def warm_diarizer(diarizer: Diarizer) -> float:
    """The diarizer once on the sample, on a GPU repeated to ``GPU_WARMUP_SECONDS``: its batches
    (128 segmentation chunks, 256 speaker-chunk embeddings) fill up only after a minute or so of
    a conversation. Returns the seconds it took."""
    clip = _warmup_clip(diarizer.device)
    started = time.perf_counter()
    with side_stream(diarizer.device, "diarization"):
        diarizer(clip, SpeakerHints(), CancelToken(), {})
    seconds = round(time.perf_counter() - started, 3)
    logger.info("Warmup: diarization %.2f s", seconds)
    return seconds


def _warmup_clip(device: str) -> np.ndarray:
    clip = sample_speech()
    if device == "cuda":
        return np.tile(clip, math.ceil(GPU_WARMUP_SECONDS * SAMPLE_RATE / clip.shape[0]))
    start, end = CPU_WARMUP_SPAN
    return clip[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]


def warm_whisper_batches(whisper: Whisper, batch_size: int, replicas: int, *, word_times: bool) -> None:
    """Decode one full batch of windows on every replica at once (and time their words: ``word_times``).

    GPU libraries choose (and the JIT compiles) kernels per problem size, so a batch of one
    does not warm a batch of sixteen, and each replica has its own allocator and handles.
    This needs Whisper alone, so the registry runs it as soon as Whisper is loaded, on the GPU
    while the other stages are still being imported (Python work, under the GIL): it is off
    the path to ready. Every window is the 30 s sample: for Whisper only the batch's shape
    matters, and no VAD is loaded yet.
    """
    clip = sample_speech()
    window = clip.shape[0] / SAMPLE_RATE
    windows = [SpeechChunk(0.0, window)] * batch_size
    english = Decoding("en", "transcribe", None, fallback.ONCE, batch_size)
    whisper.prepare(batch_size, english)

    def one_replica(_: int) -> None:
        with side_stream(whisper.feature_device):  # the features, beside the other replica's decoding
            segments = whisper.transcribe(clip, windows, english)
            if word_times:
                whisper.time_words(clip, segments, english)

    # One thread per replica: each hands the scheduler a full batch, which takes a free replica.
    with ThreadPoolExecutor(max_workers=replicas, thread_name_prefix="warmup") as pool:
        list(pool.map(one_replica, range(replicas)))
    logger.info("Warmup: Whisper on %d full batch(es) of %d windows", replicas, batch_size)
