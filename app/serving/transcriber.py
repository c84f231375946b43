"""Audio to a transcript, for the routes, the job runner and live sessions alike.

Once an upload is on disk, a synchronous request and a job are the same work: resolve the
options against the loaded models, decode within the memory budget, run the pipeline, count
the result. A live session's turn is that work without the file (``transcribe_speech``).
``Transcriber`` is that work, the one entry to the pipeline, and the one rule for whether it
may start now (``pipeline``: models loaded and warm, this process not an API-only front end),
and whether a job may be claimed (``may_start``: that, and not draining; requests are refused
at admission).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.control.admission import AdmissionGate
from app.control.budget import Budgets
from app.control.cancellation import CancelToken
from app.control.progress import Progress
from app.engine.audio import SAMPLE_RATE, decode_audio
from app.engine.decoding import Urgency
from app.engine.options import Capabilities, ResolvedOptions, TranscribeOptions
from app.engine.pipeline import TranscriptionPipeline
from app.engine.speakers.known import KnownSpeaker, VoiceModel
from app.engine.speakers.references import decode_references
from app.engine.vad import SpeechChunk
from app.errors import NotReady, retry_later
from app.serving.status import Phase, ServiceState
from app.transcript import TextListener, Transcript

TranscriptSink = Callable[[Transcript], None]


@dataclass(frozen=True)
class DecodeLimits:
    """How far decoding a file may go (from the settings)."""

    timeout_s: float
    max_seconds: float
    ffmpeg: str
    temp_dir: Path | None = None  # where reference clips are written for ffmpeg (TEMP_DIR)


class Transcriber:
    def __init__(
        self,
        state: ServiceState,
        gate: AdmissionGate,
        budgets: Budgets,
        limits: DecodeLimits,
        on_transcript: TranscriptSink,
        *,
        loads_models: bool = True,
    ) -> None:
        self.state = state
        self.gate = gate
        self.budgets = budgets
        self.limits = limits
        self.on_transcript = on_transcript
        self.loads_models = loads_models

    def pipeline(self) -> TranscriptionPipeline:
        """The pipeline, once loaded and warm; else NotReady (a 503) saying why."""
        if not self.loads_models:
            raise NotReady("This process (ROLE=api) loads no model: submit the file as a job, POST /v1/jobs.")
        state = self.state
        if state.phase is Phase.FAILED:
            raise NotReady(f"The service failed to start: {state.failure}")
        if state.phase is not Phase.READY or state.pipeline is None:
            raise NotReady(f"The service is {state.phase.value}; retry shortly.", headers=retry_later())
        return state.pipeline

    def loaded_pipeline(self) -> TranscriptionPipeline | None:
        """The pipeline if this process has one ready, else None (loading, failed, or ROLE=api)."""
        try:
            return self.pipeline()
        except NotReady:
            return None

    @property
    def device(self) -> str | None:
        """Where Whisper runs (``cuda`` or ``cpu``), once the loader has chosen."""
        return self.state.device

    def may_start(self) -> bool:
        """May a job worker claim work now (loaded, and the server not draining)."""
        return not self.gate.draining and self.loaded_pipeline() is not None

    def resolve(self, options: TranscribeOptions) -> ResolvedOptions:
        """Every default decided and checked against the loaded models (InvalidParameter: a 422)."""
        return self.pipeline().resolve(options)

    def model_id(self, requested: str | None) -> str:
        """The id of the Whisper model a request names (None: the default); ModelNotFound (a 404) else."""
        return self.pipeline().models.id_of(requested)

    def partial_model(self) -> str | None:
        """REALTIME_PARTIAL_MODEL's id once it is loaded (live partials may decode with it); else None."""
        return self.state.partial_model

    def english_only(self, model_id: str) -> bool:
        return self.pipeline().models.english_only(model_id)

    def capabilities(self) -> Capabilities:
        """What the default model can do (languages, batch sizes, a diarizer)."""
        return self.pipeline().capabilities

    def voice_model(self) -> VoiceModel | None:
        """The voice embedding and threshold known speakers are matched with; None without a diarizer."""
        return self.pipeline().voice_model()

    def known_speakers(self, options: ResolvedOptions | TranscribeOptions) -> list[KnownSpeaker]:
        """The known speakers' reference clips, decoded and checked (InvalidParameter, a 422, for a bad one)."""
        if not options.known_speakers:
            return []
        limits = self.limits
        return decode_references(
            options.known_speakers,
            timeout_s=min(limits.timeout_s, 30.0),
            ffmpeg=limits.ffmpeg,
            temp_dir=limits.temp_dir,
        )

    def transcribe_file(
        self,
        path: Path,
        options: ResolvedOptions,
        cancel: CancelToken,
        progress: Progress | None = None,
        listener: TextListener | None = None,
    ) -> Transcript:
        pipeline = self.pipeline()
        progress = progress or Progress()
        progress.plan(("decode", *options.stages))
        progress.enter("decode")
        started = time.perf_counter()
        known = self.known_speakers(options)
        with self.budgets.memory.reservation() as memory:
            audio = decode_audio(
                path,
                timeout_s=self.limits.timeout_s,
                max_seconds=self.limits.max_seconds,
                memory=memory,
                ffmpeg=self.limits.ffmpeg,
            )
            decode_s = round(time.perf_counter() - started, 4)
            transcript = pipeline.run(audio, options, cancel, progress, listener=listener, known=known)
        transcript.timings["decode"] = decode_s
        self.on_transcript(transcript)
        return transcript

    def transcribe_speech(
        self,
        audio: np.ndarray,
        options: ResolvedOptions,
        cancel: CancelToken,
        *,
        urgency: Urgency,
        listener: TextListener | None = None,
    ) -> Transcript:
        """Audio in memory that is speech from end to end (a live turn: the session's VAD found
        it), so no VAD runs again, unless it is longer than a window (then it cuts it at its
        pauses). A partial decode (``Urgency.PARTIAL``: a turn's provisional text) is not
        counted: the turn's final decode counts its audio once."""
        speech = [SpeechChunk(0.0, len(audio) / SAMPLE_RATE)]
        transcript = self.pipeline().run(audio, options, cancel, listener=listener, speech=speech, urgency=urgency)
        if urgency is not Urgency.PARTIAL:
            self.on_transcript(transcript)
        return transcript
