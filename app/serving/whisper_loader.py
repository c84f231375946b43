"""Loading one Whisper model: start-up's default, or another on its first request.

``WhisperModels`` (app/engine/whisper_models.py) decides when a model loads and unloads; this
is how: the engine ENGINE names on the service's device, its batch scheduler, its warmup on a
GPU, and how much memory it holds (for MODEL_MEMORY_BUDGET_MB).
"""

from __future__ import annotations

import gc
import logging
import os

from app.config import Settings
from app.engine.whisper.batching import BatchScheduler, release_cached_gpu_memory
from app.engine.whisper.ctranslate2 import CTranslate2Engine
from app.engine.whisper.engine import WhisperEngine
from app.engine.whisper.sources import folder_mb, resolve_whisper_source
from app.engine.whisper.stage import Whisper
from app.engine.whisper_models import LoadedWhisper, ModelSpec
from app.runtime.timing import StepTimer
from app.serving.fingerprint import weights_digest
from app.serving.status import ServiceState
from app.serving.warmup import warm_whisper_batches

logger = logging.getLogger(__name__)

# Whisper batches in flight on one GPU when WHISPER_REPLICAS is 0 (bench/throughput.py).
DEFAULT_GPU_REPLICAS = 2


def hf_token(settings: Settings) -> str | None:
    return settings.hf_token.get_secret_value() if settings.hf_token else None


class WhisperLoader:
    """Loads and releases Whisper models with the device, compute type and engine start-up chose."""

    def __init__(self, settings: Settings, state: ServiceState) -> None:
        self.settings = settings
        self.state = state
        self.startup_timer: StepTimer | None = None  # while start-up loads the default model

    def load(self, spec: ModelSpec) -> LoadedWhisper:
        """Load one Whisper model (start-up's default, or another on its first request) and warm it on a GPU."""
        settings = self.settings
        device, compute_type, engine_name = self.state.device, self.state.compute_type, self.state.engine
        assert device is not None and compute_type is not None and engine_name is not None
        timer = self.startup_timer or StepTimer()
        memory_before = _device_memory_in_use_mb(device)
        with timer("whisper"):
            source = resolve_whisper_source(spec.source, device, settings.model_cache_dir)
            logger.info("Loading Whisper %s on %s (%s, %s)", source.display_name, device, compute_type, engine_name)
            engine: WhisperEngine
            if engine_name == "torch":
                from app.engine.whisper.torch_engine import TorchEngine

                # One batch at a time: its step is a CUDA graph on buffers sized for the largest batch.
                replicas = 1
                engine = TorchEngine.load(
                    source,
                    device=device,
                    compute_type=compute_type,
                    cpu_threads=settings.cpu_threads or os.cpu_count() or 1,
                    download_root=str(settings.model_cache_dir / "whisper-hf"),
                    hf_token=hf_token(settings),
                    max_new_tokens=settings.max_new_tokens,
                    cuda_graphs=settings.cuda_graphs,
                )
            else:
                replicas = settings.whisper_replicas or (DEFAULT_GPU_REPLICAS if device == "cuda" else 1)
                engine = CTranslate2Engine.load(
                    source,
                    device=device,
                    compute_type=compute_type,
                    cpu_threads=settings.cpu_threads or os.cpu_count() or 1,
                    replicas=replicas,
                    download_root=str(settings.model_cache_dir / "whisper"),
                    hf_token=hf_token(settings),
                    max_new_tokens=settings.max_new_tokens,
                )
            scheduler = BatchScheduler(f"whisper:{spec.id}", share=settings.batch_across_requests, workers=replicas)
            whisper = Whisper(engine, scheduler)
        if settings.warmup and device == "cuda":
            with timer("whisper_warmup"):
                # With alignment on, only languages without a wav2vec2 aligner use Whisper's word times.
                warm_whisper_batches(whisper, settings.batch_size, replicas, word_times=not settings.enable_alignment)
        weights = engine.model_path
        memory_mb = engine.device_memory_mb() if device == "cuda" else None
        if memory_mb is None and memory_before is not None:
            # The GPU's memory in use before and after the load (other work meanwhile counts in).
            memory_mb = max((_device_memory_in_use_mb(device) or 0.0) - memory_before, 0.0)
        if memory_mb is None:  # on the CPU: the weights' files
            memory_mb = folder_mb(weights) if weights is not None else spec.size_mb or 0.0
        return LoadedWhisper(
            whisper,
            memory_mb,
            weights=weights_digest(weights) if weights is not None else source.location,
        )

    @staticmethod
    def release(whisper: Whisper) -> None:
        """Unload a model: its scheduler's threads end, its engine lets go, the freed GPU memory goes back."""
        whisper.scheduler.close()
        whisper.engine.release()
        gc.collect()
        release_cached_gpu_memory()


def _device_memory_in_use_mb(device: str) -> float | None:
    """The GPU's memory in use, all processes (unlike ``runtime.device.gpu_memory``, this may
    initialise CUDA: the load is about to)."""
    if device != "cuda":
        return None
    import torch

    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20
