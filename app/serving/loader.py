"""Loading the models: once at start-up, in parallel, warmed up, then handed to ``ServiceState``.

``ModelLoader.load`` runs in a background thread started by the app's lifespan, so the
process answers ``/health`` (503, ``loading``/``warming``) while weights load and kernels
compile. Everything it learns on the way (devices, each stage, the steps' seconds) it writes
to the ``ServiceState`` (app/serving/status.py), which is what readers see. Optional stages
that cannot load (no aligner for a language, no diarization pipeline) leave the service
*degraded*, with the reason in words; only a Whisper model that cannot load makes it *failed*.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from app.config import Settings
from app.engine.align.aligners import AlignerCache
from app.engine.align.models import TORCHAUDIO_MODELS
from app.engine.pipeline import TranscriptionPipeline
from app.engine.speakers.diarization import Diarizer, DiarizerUnavailable, load_diarizer
from app.engine.vad import load_speech_detector
from app.engine.whisper.batching import BatchScheduler, release_cached_gpu_memory
from app.engine.whisper.ctranslate2 import CTranslate2Engine
from app.engine.whisper.engine import WhisperEngine, choose_engine
from app.engine.whisper.sources import folder_mb, resolve_whisper_source
from app.engine.whisper.stage import Whisper
from app.engine.whisper_models import LoadedWhisper, ModelSpec, WhisperModels, model_spec
from app.runtime.accelerator import AcceleratorCheck, check_accelerator, choose_device, with_torch
from app.runtime.device import (
    GpuInfo,
    describe_gpu,
    describe_jit_cache,
    resolve_compute_type,
)
from app.runtime.gpu_streams import side_stream
from app.runtime.lean_imports import import_stage_module
from app.runtime.timing import StepTimer, process_age_s
from app.serving.fingerprint import ModelsFingerprint, weights_digest
from app.serving.status import Phase, ServiceState
from app.serving.warmup import warm_up, warm_whisper_batches

T = TypeVar("T")

logger = logging.getLogger(__name__)

# Whisper batches in flight on one GPU when WHISPER_REPLICAS is 0 (bench/throughput.py).
DEFAULT_GPU_REPLICAS = 2
# The longest a request waits for its model to load (a first download included) or for room in the budget.
MODEL_WAIT_S = 600.0


class ModelLoader:
    def __init__(self, settings: Settings, state: ServiceState) -> None:
        self.settings = settings
        self.state = state
        self._torch_probed = threading.Event()  # the accelerator check has torch's answer too (or loading ended)
        self._startup_timer: StepTimer | None = None  # while start-up loads the default model

    def load(self) -> None:
        """Load every stage and warm up, then serve; never raises (the outcome is in the state's ``phase``)."""
        state = self.state
        timer = StepTimer(state.startup_timings)
        if (age := process_age_s()) is not None:  # Python's start, the app's imports, the accelerator check
            state.startup_timings["before_load"] = round(age, 2)
        state.gpu_memory.start()
        try:
            with timer("load_total"):
                pipeline = self._load(timer)
            if self.settings.warmup:
                state.phase = Phase.WARMING
                with timer("warmup"):
                    state.warmup = warm_up(pipeline, self.settings.batch_size)
            # Measured once warm: what the JIT compiled is in the cache by now.
            state.jit_cache = describe_jit_cache()
            freeze_startup_objects()
            state.ready(pipeline)
            logger.info("Ready: %s", ", ".join(f"{k} {v:.2f} s" for k, v in state.startup_timings.items()))
        except Exception as exc:
            logger.exception("Startup failed")
            state.failed(f"{type(exc).__name__}: {exc}")
        finally:
            self._torch_probed.set()

    def check_accelerator(self) -> AcceleratorCheck:
        """Can the GPU be used: its libraries' answer (with DEVICE=cuda the lifespan asks before loading)."""
        if self.state.accelerator is None:
            self.state.accelerator = check_accelerator(self.settings.device, self.settings.engine)
        return self.state.accelerator

    def verified_accelerator(self) -> AcceleratorCheck:
        """The check with torch's answer too, which a loading thread adds (blocks until then)."""
        self._torch_probed.wait()
        return self.check_accelerator()

    def _describe_gpu(self) -> GpuInfo:
        """torch's view of the GPU, probed beside the other loads (importing torch takes seconds)."""
        try:
            if self.state.device == "cuda":
                self.state.accelerator = with_torch(self.check_accelerator(), self.settings.device)
        finally:
            self._torch_probed.set()
        return describe_gpu()

    def _load(self, timer: StepTimer) -> TranscriptionPipeline:
        settings, state = self.settings, self.state
        with timer("accelerator_check"):
            state.device = device = choose_device(settings.device, self.check_accelerator())
        for problem in self.check_accelerator().problems:
            logger.error("The GPU is not used: %s", problem.message())
        state.compute_type = resolve_compute_type(settings.compute_type, device)
        state.diarization_device = device if settings.diarization_device == "auto" else settings.diarization_device
        _configure_cpu_threads(settings.cpu_threads)
        settings.model_cache_dir.mkdir(parents=True, exist_ok=True)

        # Every stage loads at once; each thread first imports its packages one at a time
        # (``_after_imports``). Whisper goes first: its imports are the shortest, and reading its
        # weights and (on a GPU) its full-batch warmup release the GIL, so they overlap the
        # Python imports of the others (pyannote, Lightning: most of the start-up).
        pyannote = ("pyannote.audio",)
        with ThreadPoolExecutor(max_workers=5, thread_name_prefix="load") as pool:
            whisper = pool.submit(
                _after_imports, ("faster_whisper", "whisperx.audio"), device, self._load_whisper, timer
            )
            gpu = pool.submit(_after_imports, ("torch",), "cpu", self._timed, timer, "cuda_init", self._describe_gpu)
            vad = pool.submit(
                _after_imports,
                pyannote if settings.vad_method == "pyannote" else (),
                device,
                self._timed,
                timer,
                "vad",
                load_speech_detector,
                settings.vad_method,
                device,
            )
            align_imports = ("torchaudio.pipelines",) if settings.enable_alignment else ()
            aligners = pool.submit(_after_imports, align_imports, device, self._load_aligners, timer)
            diarizer = pool.submit(
                _after_imports,
                pyannote if settings.enable_diarization else (),
                state.diarization_device,
                self._load_diarizer,
                timer,
            )
            state.gpu = gpu.result()
            models, loaded_diarizer = whisper.result(), diarizer.result()
            return TranscriptionPipeline(
                models,
                vad=vad.result(),
                device=device,
                aligners=aligners.result(),
                diarizer=loaded_diarizer,
                diarizer_unavailable=state.stages["diarization"].detail,
                default_batch_size=settings.batch_size,
                max_batch_size=settings.max_batch_size,
                diarize_during_asr=settings.diarize_during_asr,
                known_speaker_threshold=settings.known_speaker_threshold,
                fingerprint=self._fingerprint(loaded_diarizer),
            )

    def _fingerprint(self, diarizer: Diarizer | None) -> Callable[[str, str], str]:
        """A model's id and weights → the digest of what it produces with these stages (the job cache's key)."""
        settings = self.settings
        device, compute_type, engine = self.state.device, self.state.compute_type, self.state.engine
        assert device is not None and compute_type is not None and engine is not None
        stages = ModelsFingerprint(
            whisper="",
            weights="",
            engine=engine,
            compute_type=compute_type,
            device=device,
            max_new_tokens=settings.max_new_tokens,
            vad=settings.vad_method,
            alignment=dict(settings.align_models) if settings.enable_alignment else None,
            diarizer=diarizer.name if diarizer is not None else None,
        )
        return lambda model, weights: dataclasses.replace(stages, whisper=model, weights=weights).digest

    @staticmethod
    def _timed(timer: StepTimer, step: str, load: Callable[..., T], *args: Any) -> T:
        with timer(step):
            return load(*args)

    def _load_whisper(self, timer: StepTimer) -> WhisperModels:
        """The models WHISPER_MODEL(S) name, with the default loaded (and warmed on a GPU)."""
        settings, asr = self.settings, self.state.stages["asr"]
        device = self.state.device
        assert device is not None
        asr.device = device
        self.state.engine = choose_engine(settings.engine, device)
        default = model_spec(settings.whisper_model, device)
        specs = {default.id: default}
        for entry in settings.whisper_models:
            spec = model_spec(entry, device)
            if specs.setdefault(spec.id, spec).source != spec.source:
                raise ValueError(f"WHISPER_MODELS: {specs[spec.id].source} and {spec.source} are both called {spec.id}")
        asr.model = default.id
        models = WhisperModels(
            list(specs.values()),
            default.id,
            self._load_model,
            _release_model,
            budget_mb=settings.model_memory_budget_mb,
            idle_s=settings.model_idle_s,
            wait_s=MODEL_WAIT_S,
        )
        self._startup_timer = timer  # the default's load and warmup are start-up steps
        try:
            models.start()
        finally:
            self._startup_timer = None
        asr.loaded = True
        return models

    def _load_model(self, spec: ModelSpec) -> LoadedWhisper:
        """Load one Whisper model (start-up's default, or another on its first request) and warm it on a GPU."""
        settings = self.settings
        device, compute_type, engine_name = self.state.device, self.state.compute_type, self.state.engine
        assert device is not None and compute_type is not None and engine_name is not None
        timer = self._startup_timer or StepTimer()
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
                    hf_token=self._token,
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
                    hf_token=self._token,
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

    def _load_aligners(self, timer: StepTimer) -> AlignerCache | None:
        settings = self.settings
        if not settings.enable_alignment:
            return None
        device = self.state.device
        assert device is not None
        self.state.stages["alignment"].device = device
        aligners = AlignerCache(
            device=device,
            overrides=settings.align_models,
            cache_dir=settings.model_cache_dir,
            capacity=settings.align_cache_size,
            offline=settings.offline,
            load_wait_s=settings.download_timeout_s * 2,
        )
        with timer("aligners"):
            for language in settings.preload_align_languages:
                if language not in TORCHAUDIO_MODELS or language in settings.align_models:
                    with _IMPORTS:  # WhisperX's Hugging Face loader imports transformers: one thread at a time
                        import_stage_module("whisperx.alignment")
                aligners.get(language)
        return aligners

    def _load_diarizer(self, timer: StepTimer) -> Diarizer | None:
        settings, stage = self.settings, self.state.stages["diarization"]
        if not settings.enable_diarization:
            stage.detail = "disabled (ENABLE_DIARIZATION=false)"
            return None
        device = self.state.diarization_device
        assert device is not None
        stage.device = device
        stage.model = "offline" if settings.diarizer == "offline" else settings.diarization_pipeline
        with timer("diarizer"):
            try:
                loaded = load_diarizer(
                    settings.diarizer,
                    settings.diarization_pipeline,
                    device=device,
                    hf_token=self._token,
                    cache_dir=settings.model_cache_dir,
                )
            except DiarizerUnavailable as exc:
                stage.detail = str(exc)
                logger.warning("Diarization unavailable: %s", exc)
                return None
        stage.model, stage.loaded = loaded.diarizer.name, True
        if loaded.fallback_reason:
            stage.detail = f"offline diarizer in use; the pretrained pipeline was not loaded: {loaded.fallback_reason}"
        return loaded.diarizer

    @property
    def _token(self) -> str | None:
        token = self.settings.hf_token
        return token.get_secret_value() if token else None


# First imports, from several loading threads at once, of packages that import each other
# (pyannote.audio → Lightning → torchmetrics; a Hugging Face aligner → transformers)
# can hand a thread a half-initialised module: "ImportError: cannot import name
# 'GGUF_CONFIG_MAPPING' from 'transformers.integrations'" failed a start in CI. Imports are
# Python work under the GIL anyway, so taking them one thread at a time costs little; the
# loads that follow still overlap.
_IMPORTS = threading.Lock()


def _after_imports(modules: tuple[str, ...], device: str, load: Callable[..., T], *args: Any) -> T:
    with _IMPORTS:
        for module in modules:
            import_stage_module(module)
    with side_stream(device):  # weights go up beside Whisper's warmup decoding, not queued behind it
        return load(*args)


def _release_model(whisper: Whisper) -> None:
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


def freeze_startup_objects() -> None:
    """Keep the half a million objects that start-up made (modules, models) out of garbage collection.

    A full collection walks every tracked object while holding the GIL: 300–380 ms on the dev
    machine once the models are loaded, during which no thread runs Python, so ``/health``,
    the event loop and the scheduler all stall. Frozen objects are never collected (they live
    as long as the process anyway; reference counting still frees them, only cycles among them
    would stay), and a full collection then takes well under a millisecond.
    """
    gc.collect()
    gc.freeze()


def _configure_cpu_threads(threads: int) -> None:
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
