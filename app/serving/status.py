"""What the service is doing, for everyone who asks: the loader writes it, readers take snapshots.

``ServiceState`` is written by the loader as start-up goes (phase, devices, each stage, the
steps' seconds) and holds the pipeline once it is ready (the transcriber serves from it).
``/health``, ``/metrics`` and the prewarm summary read it through ``snapshot()``: one frozen
``ServiceStatus`` with the live parts (aligners loaded per language, the Whisper scheduler,
GPU memory) read at that moment, so no reader reaches into the models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType

from app.config import Settings
from app.engine.pipeline import TranscriptionPipeline
from app.engine.whisper.batching import SchedulerStats
from app.engine.whisper_models import ModelStatus
from app.runtime.accelerator import AcceleratorCheck
from app.runtime.device import GpuInfo, GpuMemory, GpuMemorySampler, JitCacheInfo
from app.runtime.timing import Span
from app.serving.warmup import WarmupReport


class Phase(StrEnum):
    LOADING = "loading"
    WARMING = "warming"
    READY = "ready"
    FAILED = "failed"


@dataclass
class StageStatus:
    enabled: bool
    loaded: bool = False
    loading: bool = False  # loading after the service became ready (diarization: see ModelLoader)
    model: str | None = None
    device: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class BatchingStatus:
    stats: SchedulerStats
    model_s: dict[str, float]  # seconds in each kind of model call (encode, decode, ...)
    decoded_windows: int
    decoded_tokens: int


@dataclass(frozen=True)
class ServiceStatus:
    """One moment of the service, as ``/health`` and ``/metrics`` show it."""

    phase: Phase
    failure: str | None
    model: str | None
    device: str | None
    diarization_device: str | None
    compute_type: str | None
    engine: str | None
    gpu: GpuInfo | None
    accelerator: AcceleratorCheck | None
    stages: MappingProxyType[str, StageStatus]
    degraded: tuple[str, ...]  # the stages (or the accelerator) that keep the service from healthy
    startup_s: MappingProxyType[str, float]
    startup_timeline: tuple[Span, ...]  # each start-up step's start and end since the process started
    warmup: WarmupReport | None
    jit_cache: JitCacheInfo | None
    ready_at: float | None  # Unix time the models were ready (OpenAI's model `created`)
    batching: BatchingStatus | None
    gpu_memory: GpuMemory | None
    models: tuple[ModelStatus, ...] = ()  # every Whisper model a request may name, and its state

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    @property
    def loading(self) -> tuple[str, ...]:
        """Stages still loading while the service already serves (requests that need one wait for it)."""
        return tuple(name for name, stage in self.stages.items() if stage.loading)


class ServiceState:
    """Start-up's record and the pipeline it produced; written by the loader thread, read as snapshots."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.phase = Phase.LOADING
        self.failure: str | None = None
        self.device: str | None = None
        self.diarization_device: str | None = None
        self.compute_type: str | None = None
        self.engine: str | None = None  # Whisper's engine, once chosen
        self.gpu: GpuInfo | None = None
        self.accelerator: AcceleratorCheck | None = None
        self.warmup: WarmupReport | None = None
        self.jit_cache: JitCacheInfo | None = None
        self.startup_timings: dict[str, float] = {}
        self.startup_spans: list[Span] = []
        self.ready_at: float | None = None
        self.pipeline: TranscriptionPipeline | None = None
        self.partial_model: str | None = None  # REALTIME_PARTIAL_MODEL's id, once loaded: live partials use it
        self.gpu_memory = GpuMemorySampler()  # started by the loader
        self.stages = {
            "asr": StageStatus(enabled=True),
            "alignment": StageStatus(enabled=settings.enable_alignment),
            "diarization": StageStatus(enabled=settings.enable_diarization),
        }

    def ready(self, pipeline: TranscriptionPipeline | None) -> None:
        """Serve ``pipeline`` from now on (None: this process loads no model, ROLE=api)."""
        self.pipeline = pipeline
        self.ready_at = time.time()
        self.phase = Phase.READY

    def failed(self, reason: str) -> None:
        self.failure = reason
        self.phase = Phase.FAILED

    def without_models(self) -> None:
        """ROLE=api: this process takes jobs for workers elsewhere and loads no model."""
        for stage in self.stages.values():
            stage.enabled = False
            stage.detail = "ROLE=api: the models run on the job workers"
        self.ready(None)

    def close(self) -> None:
        """At shutdown: stop the GPU memory sampler and the pipeline's threads."""
        self.gpu_memory.close()
        if self.pipeline is not None:
            self.pipeline.close()

    def snapshot(self) -> ServiceStatus:
        pipeline = self.pipeline
        stages = {
            "asr": replace(self.stages["asr"]),
            "alignment": self._alignment_status(),
            "diarization": replace(self.stages["diarization"]),
        }
        batching = None
        if pipeline is not None:
            whisper = pipeline.whisper
            batching = BatchingStatus(
                whisper.scheduler.stats(),
                dict(whisper.model_seconds.timings),
                whisper.decoded.windows,
                whisper.decoded.tokens,
            )
        return ServiceStatus(
            phase=self.phase,
            failure=self.failure,
            model=stages["asr"].model,
            device=self.device,
            diarization_device=self.diarization_device,
            compute_type=self.compute_type,
            engine=self.engine,
            gpu=self.gpu,
            accelerator=self.accelerator,
            stages=MappingProxyType(stages),
            degraded=self._degraded(stages) if self.phase is Phase.READY else (),
            startup_s=MappingProxyType(dict(self.startup_timings)),
            startup_timeline=tuple(sorted(self.startup_spans, key=lambda span: (span.start, span.end))),
            warmup=self.warmup,
            jit_cache=self.jit_cache,
            ready_at=self.ready_at,
            batching=batching,
            gpu_memory=self.gpu_memory.latest(),
            models=tuple(pipeline.models.statuses()) if pipeline is not None else (),
        )

    def _alignment_status(self) -> StageStatus:
        """Aligners load lazily, per language: the stage as it stands now."""
        stage = self.stages["alignment"]
        aligners = self.pipeline.aligners if self.pipeline else None
        if not stage.enabled:
            return StageStatus(enabled=False, detail="disabled (ENABLE_ALIGNMENT=false); word times come from Whisper")
        if aligners is None:
            return replace(stage)
        status = aligners.status()
        loaded = status["loaded"]
        failures = status["unavailable"]
        detail = None
        if failures:
            reasons = "; ".join(f"{lang}: {why}" for lang, why in failures.items())
            detail = f"word times come from Whisper for these languages — {reasons}"
        return StageStatus(
            enabled=True,
            loaded=bool(loaded),
            model=", ".join(f"{a['language']}={a['model']}" for a in loaded) or None,
            device=stage.device,
            detail=detail,
        )

    def _degraded(self, stages: dict[str, StageStatus]) -> tuple[str, ...]:
        reasons: list[str] = []
        if self.accelerator is not None and self.accelerator.problems:
            reasons.append("accelerator")
        reasons += [
            name
            for name in ("alignment", "diarization")
            if stages[name].enabled and not stages[name].loaded and not stages[name].loading
        ]
        return tuple(reasons)
