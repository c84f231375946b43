"""The one place models live: loaded once at startup, warmed up, then shared by every request.

``ModelRegistry.load`` runs in a background thread started by the app's lifespan, so the
process answers ``/health`` (503, ``loading``/``warming``) while weights load and kernels
compile. Optional stages that cannot load (no aligner for a language, no diarization
pipeline) leave the service *degraded*, with the reason in words; only a Whisper model that
cannot load makes it *failed*.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from enum import StrEnum

from app.config import Settings
from app.services.alignment import AlignerCache
from app.services.asr import WhisperEngine
from app.services.device import (
    GpuInfo,
    JitCacheInfo,
    describe_gpu,
    describe_jit_cache,
    resolve_compute_type,
    resolve_device,
)
from app.services.diarization import Diarizer, DiarizerUnavailable, PyannoteDiarizer
from app.services.model_sources import resolve_whisper_source
from app.services.pipeline import TranscriptionPipeline
from app.services.warmup import WarmupReport, warm_up

logger = logging.getLogger(__name__)


class Phase(StrEnum):
    LOADING = "loading"
    WARMING = "warming"
    READY = "ready"
    FAILED = "failed"


@dataclass
class StageStatus:
    enabled: bool
    loaded: bool = False
    model: str | None = None
    device: str | None = None
    detail: str | None = None


class ModelRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.phase = Phase.LOADING
        self.failure: str | None = None
        self.pipeline: TranscriptionPipeline | None = None
        self.device: str | None = None
        self.diarization_device: str | None = None
        self.compute_type: str | None = None
        self.gpu: GpuInfo | None = None
        self.warmup: WarmupReport | None = None
        self.jit_cache: JitCacheInfo | None = None
        self.load_seconds: float | None = None
        self.stages = {
            "asr": StageStatus(enabled=True),
            "alignment": StageStatus(enabled=settings.enable_alignment),
            "diarization": StageStatus(enabled=settings.enable_diarization),
        }

    def load(self) -> None:
        """Load every stage and warm up; never raises (the outcome is in ``phase``)."""
        started = time.perf_counter()
        try:
            self._load()
            self.load_seconds = round(time.perf_counter() - started, 2)
            if self.settings.warmup:
                self.phase = Phase.WARMING
                assert self.pipeline is not None
                self.warmup = warm_up(self.pipeline, self.device or "cpu", self.settings.batch_size)
            # Measured once warm: what the JIT compiled is in the cache by now.
            self.jit_cache = describe_jit_cache()
            self.phase = Phase.READY
            logger.info("Ready in %.1f s", time.perf_counter() - started)
        except Exception as exc:
            logger.exception("Startup failed")
            self.failure = f"{type(exc).__name__}: {exc}"
            self.phase = Phase.FAILED

    def _load(self) -> None:
        settings = self.settings
        self.device = device = resolve_device(settings.device)
        self.compute_type = resolve_compute_type(settings.compute_type, device)
        self.diarization_device = device if settings.diarization_device == "auto" else settings.diarization_device
        self.gpu = describe_gpu()
        _configure_cpu_threads(settings.cpu_threads)
        token = settings.hf_token.get_secret_value() if settings.hf_token else None
        cache = settings.model_cache_dir
        cache.mkdir(parents=True, exist_ok=True)

        asr = self.stages["asr"]
        asr.device = device
        source = resolve_whisper_source(settings.whisper_model, device, cache)
        asr.model = source.display_name
        logger.info("Loading Whisper %s on %s (%s)", source.display_name, device, self.compute_type)
        whisper = WhisperEngine.load(
            source,
            device=device,
            compute_type=self.compute_type,
            cpu_threads=settings.cpu_threads or os.cpu_count() or 1,
            download_root=str(cache / "whisper"),
            hf_token=token,
        )
        asr.loaded = True

        aligners = None
        if settings.enable_alignment:
            aligners = AlignerCache(
                device=device, overrides=settings.align_models, cache_dir=cache, capacity=settings.align_cache_size
            )
            for language in settings.preload_align_languages:
                aligners.get(language)
            self.stages["alignment"].device = device

        diarizer: Diarizer | None = None
        diarization = self.stages["diarization"]
        if settings.enable_diarization:
            diarization.model, diarization.device = settings.diarization_pipeline, self.diarization_device
            try:
                diarizer = PyannoteDiarizer.load(
                    settings.diarization_pipeline, device=self.diarization_device, hf_token=token, cache_dir=cache
                )
                diarization.loaded = True
            except DiarizerUnavailable as exc:
                diarization.detail = str(exc)
                logger.warning("Diarization unavailable: %s", exc)
        else:
            diarization.detail = "disabled (ENABLE_DIARIZATION=false)"

        self.pipeline = TranscriptionPipeline(
            whisper, device=device, aligners=aligners, diarizer=diarizer, diarizer_unavailable=diarization.detail
        )

    def alignment_status(self) -> StageStatus:
        """The alignment stage as it stands now (aligners load lazily per language)."""
        stage = self.stages["alignment"]
        aligners = self.pipeline.aligners if self.pipeline else None
        if not stage.enabled:
            return StageStatus(enabled=False, detail="disabled (ENABLE_ALIGNMENT=false); word times come from Whisper")
        if aligners is None:
            return stage
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

    def degraded_reasons(self) -> list[str]:
        reasons = []
        alignment = self.alignment_status()
        if alignment.enabled and not alignment.loaded:
            reasons.append("alignment")
        diarization = self.stages["diarization"]
        if diarization.enabled and not diarization.loaded:
            reasons.append("diarization")
        return reasons


def _configure_cpu_threads(threads: int) -> None:
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
