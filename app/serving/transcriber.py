"""One audio file to one transcript: decode within the memory budget, then the pipeline.

What a synchronous request and a job have in common once their upload is on disk.
"""

from __future__ import annotations

import time
from pathlib import Path

from app.config import Settings
from app.control.budget import Budgets
from app.control.cancellation import CancelToken
from app.control.progress import Progress
from app.engine.audio import decode_audio
from app.engine.pipeline import TranscriptionPipeline
from app.transcript import TranscribeOptions, Transcript


def transcribe_file(
    pipeline: TranscriptionPipeline,
    path: Path,
    options: TranscribeOptions,
    settings: Settings,
    budgets: Budgets,
    cancel: CancelToken,
    progress: Progress | None = None,
) -> Transcript:
    """``options`` are resolved (``TranscriptionPipeline.resolve``)."""
    progress = progress or Progress()
    progress.plan(("decode", *pipeline.stages(options)))
    progress.enter("decode")
    started = time.perf_counter()
    with budgets.memory.reservation() as memory:
        audio = decode_audio(
            path,
            timeout_s=settings.decode_timeout_s,
            max_seconds=settings.max_audio_seconds,
            memory=memory,
            ffmpeg=settings.ffmpeg_binary,
        )
        decode_s = round(time.perf_counter() - started, 4)
        transcript = pipeline.run(audio, options, cancel, progress)
    transcript.timings["decode"] = decode_s
    return transcript
