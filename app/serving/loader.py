"""Loading the models: once at start-up, in parallel, warmed up, then handed to ``ServiceState``.

``ModelLoader.load`` runs in a background thread started by the app's lifespan, so the process
answers ``/health`` (503, ``loading``/``warming``) while weights load and kernels compile. The
transcription stages come first and make the service ready; the diarizer loads after, while requests
are served (``/health`` lists it under ``loading``). Everything it learns on the way (devices, each
stage, the steps' seconds) it writes to the ``ServiceState`` (app/serving/status.py), which is what
readers see. Optional stages that cannot load (no aligner for a language, no diarization pipeline)
leave the service *degraded*, with the reason in words; only a Whisper model that cannot load makes
it *failed*.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from app.config import Settings
from app.engine.align.aligners import AlignerCache
from app.engine.align.models import TORCHAUDIO_MODELS
from app.engine.pipeline import TranscriptionPipeline
from app.engine.speakers.diarization import Diarizer, DiarizerUnavailable, load_diarizer, pretrained_within_reach
from app.engine.vad import load_speech_detector
from app.engine.whisper.engine import choose_engine
from app.engine.whisper_models import WhisperModels, model_spec
from app.errors import ModelNotFound
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
from app.serving.fingerprint import ModelsFingerprint
from app.serving.status import Phase, ServiceState
from app.serving.warmup import warm_diarizer, warm_up
from app.serving.whisper_loader import WhisperLoader, hf_token

T = TypeVar("T")

# pyannote.audio's import (Lightning, torchmetrics, torch._dynamo: seconds of Python under the
# GIL), cut into its heaviest parts, each a second or less, so the diarizer's loading after ready
# can step aside for requests between them (YIELD_TO_REQUESTS_S at most before each step). Only a
# pretrained pipeline needs it: the offline diarizer imports none of it.
PARTS_OF_PYANNOTE_IMPORT = ("pandas", "scipy.signal", "networkx", "matplotlib.pyplot", "torch._dynamo")
YIELD_TO_REQUESTS_S = 2.0
# While those steps run beside requests: a request thread that waits for the GIL gets it back
# after this long instead of Python's 5 ms. The torch engine's decoding takes the GIL back every
# few tokens (reasoned, not measured apart on the GPU; on the CPU it changed nothing).
SWITCH_INTERVAL_WHILE_LOADING_S = 0.0005

logger = logging.getLogger(__name__)

# The longest a request waits for its model to load (a first download included) or for room in the budget.
MODEL_WAIT_S = 600.0


class ModelLoader:
    def __init__(self, settings: Settings, state: ServiceState) -> None:
        self.settings = settings
        self.state = state
        self._torch_probed = threading.Event()  # the accelerator check has torch's answer too (or loading ended)
        self._whisper = WhisperLoader(settings, state)
        self._partial_model: str | None = None  # REALTIME_PARTIAL_MODEL's id

    def load(self) -> None:
        """Load and warm the transcription stages, serve, then load the diarizer beside the serving.

        Never raises: the outcome is in the state's ``phase`` and the stages. The diarizer comes
        after ready: a pretrained pipeline's imports (pyannote.audio → Lightning → torchmetrics,
        torch._dynamo) take longer than everything else start-up does, and even the offline one
        needs seconds to load and warm; a request that wants speakers meanwhile waits for it
        (``TranscriptionPipeline.attach_diarizer``), one that does not is served.
        """
        state = self.state
        timer = StepTimer(state.startup_timings, state.startup_spans)
        if process_age_s() is not None:  # Python's start, the app's imports, the accelerator check
            timer.mark("before_load")
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
            state.startup_timings["ready"] = timer.at()
            logger.info("Ready: %s", ", ".join(f"{k} {v:.2f} s" for k, v in state.startup_timings.items()))
        except Exception as exc:
            logger.exception("Startup failed")
            state.failed(f"{type(exc).__name__}: {exc}")
            state.stages["diarization"].loading = False
            return
        finally:
            self._torch_probed.set()
        self._load_diarizer_after_ready(pipeline, timer)
        self._load_partial_model_after_ready(pipeline, timer)

    def _load_diarizer_after_ready(self, pipeline: TranscriptionPipeline, timer: StepTimer) -> None:
        """The diarizer, imported, loaded and warmed while the service serves; never raises."""
        state, stage = self.state, self.state.stages["diarization"]
        if not stage.loading:  # disabled: the pipeline knew from the start
            return
        diarizer: Diarizer | None = None
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_WHILE_LOADING_S)
        try:
            device = state.diarization_device
            assert device is not None
            if self._tries_pretrained():  # the offline diarizer needs none of pyannote.audio
                for module in PARTS_OF_PYANNOTE_IMPORT:  # in the gaps between requests
                    pipeline.activity.wait_until_idle(YIELD_TO_REQUESTS_S)
                    with contextlib.suppress(ImportError):  # a part missing from an install: one step less
                        _import(timer, module)
                pipeline.activity.wait_until_idle(YIELD_TO_REQUESTS_S)
                _import(timer, "pyannote.audio")
            pipeline.activity.wait_until_idle(YIELD_TO_REQUESTS_S)
            with side_stream(device):
                diarizer = self._load_diarizer(timer)
            if diarizer is not None and self.settings.warmup:
                pipeline.activity.wait_until_idle(YIELD_TO_REQUESTS_S)
                with timer("diarizer_warmup"):
                    seconds = warm_diarizer(diarizer)
                if state.warmup is not None:
                    state.warmup = dataclasses.replace(state.warmup, diarization_s=seconds)
        except Exception as exc:
            logger.exception("Diarization could not be loaded")
            diarizer, stage.loaded = None, False
            stage.detail = f"the diarizer failed to load: {type(exc).__name__}: {exc}"
        finally:
            sys.setswitchinterval(switch_interval)
        pipeline.attach_diarizer(diarizer, None if diarizer is not None else stage.detail)
        stage.loading = False
        state.startup_timings["diarization_ready"] = timer.at()
        freeze_startup_objects()
        logger.info("Diarization ready %.2f s after the process started", state.startup_timings["diarization_ready"])

    def _load_partial_model_after_ready(self, pipeline: TranscriptionPipeline, timer: StepTimer) -> None:
        """REALTIME_PARTIAL_MODEL, loaded and kept while the service serves; never raises. Until
        it is in, live partials use their session's model."""
        model_id = self._partial_model
        if model_id is None:
            return
        if model_id != pipeline.models.default:
            pipeline.activity.wait_until_idle(YIELD_TO_REQUESTS_S)
            try:
                with timer("partial_model"):
                    pipeline.models.keep_loaded(model_id)
            except Exception:
                logger.exception("REALTIME_PARTIAL_MODEL %s did not load: partials use the session's model", model_id)
                return
        self.state.partial_model = model_id
        logger.info("Live partials are decoded by %s", model_id)

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

        # Every transcription stage loads at once; each thread first imports its packages one at a
        # time (``_after_imports``). Whisper goes first: reading its weights and (on a GPU) its
        # full-batch warmup release the GIL, so they overlap the other stages' Python work.
        diarize = state.stages["diarization"]
        if settings.enable_diarization:  # loads after ready; /health shows what is coming meanwhile
            diarize.loading, diarize.device = True, state.diarization_device
            diarize.model = "offline" if settings.diarizer == "offline" else settings.diarization_pipeline
        else:
            diarize.detail = "disabled (ENABLE_DIARIZATION=false)"
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="load") as pool:
            whisper = pool.submit(
                _after_imports, timer, ("torch", "faster_whisper", "whisperx.audio"), device, self._load_whisper, timer
            )
            gpu = pool.submit(
                _after_imports, timer, ("torch",), "cpu", self._timed, timer, "cuda_init", self._describe_gpu
            )
            vad = pool.submit(
                _after_imports,
                timer,
                ("torch",) if settings.vad_method == "pyannote" else (),  # but not pyannote.audio: pyannet.py
                device,
                self._timed,
                timer,
                "vad",
                load_speech_detector,
                settings.vad_method,
                device,
            )
            align_imports = ("torchaudio.pipelines",) if settings.enable_alignment else ()
            aligners = pool.submit(_after_imports, timer, align_imports, device, self._load_aligners, timer)
            state.gpu = gpu.result()
            return TranscriptionPipeline(
                whisper.result(),
                vad=vad.result(),
                device=device,
                aligners=aligners.result(),
                diarizer=None,
                diarizer_unavailable=diarize.detail,
                diarizer_loading=settings.enable_diarization,
                stage_wait_s=settings.stage_wait_s,
                default_batch_size=settings.batch_size,
                max_batch_size=settings.max_batch_size,
                diarize_during_asr=settings.diarize_during_asr,
                known_speaker_threshold=settings.known_speaker_threshold,
                fingerprint=self._fingerprint(),
            )

    def _fingerprint(self) -> Callable[[str, str, str | None], str]:
        """A model's id and weights and the diarizer's name → the digest of what they produce with
        these stages (the job cache's key)."""
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
            diarizer=None,
        )
        return lambda model, weights, diarizer: (
            dataclasses.replace(stages, whisper=model, weights=weights, diarizer=diarizer).digest
        )

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
            self._whisper.load,
            self._whisper.release,
            budget_mb=settings.model_memory_budget_mb,
            idle_s=settings.model_idle_s,
            wait_s=MODEL_WAIT_S,
        )
        if settings.realtime_partial_model:
            try:
                self._partial_model = models.id_of(settings.realtime_partial_model)
            except ModelNotFound as exc:
                raise ValueError(f"REALTIME_PARTIAL_MODEL: {exc.message}") from None
        self._whisper.startup_timer = timer  # the default's load and warmup are start-up steps
        try:
            models.start()
        finally:
            self._whisper.startup_timer = None
        asr.loaded = True
        return models

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

    def _tries_pretrained(self) -> bool:
        settings = self.settings
        if settings.diarizer == "offline":
            return False
        return pretrained_within_reach(settings.diarization_pipeline, hf_token(settings), settings.model_cache_dir)

    def _load_diarizer(self, timer: StepTimer) -> Diarizer | None:
        settings, stage = self.settings, self.state.stages["diarization"]
        device = self.state.diarization_device
        assert device is not None
        with timer("diarizer"):
            try:
                loaded = load_diarizer(
                    settings.diarizer,
                    settings.diarization_pipeline,
                    device=device,
                    hf_token=hf_token(settings),
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


# First imports, from several loading threads at once, of packages that import each other
# (pyannote.audio → Lightning → torchmetrics; a Hugging Face aligner → transformers)
# can hand a thread a half-initialised module: "ImportError: cannot import name
# 'GGUF_CONFIG_MAPPING' from 'transformers.integrations'" failed a start in CI. Imports are
# Python work under the GIL anyway, so taking them one thread at a time costs little; the
# loads that follow still overlap.
_IMPORTS = threading.Lock()


def _import(timer: StepTimer, module: str) -> None:
    with _IMPORTS:
        if module not in sys.modules:
            with timer(f"import {module}"):  # on start-up's timeline: which thread paid for which import
                import_stage_module(module)


def _after_imports(timer: StepTimer, modules: tuple[str, ...], device: str, load: Callable[..., T], *args: Any) -> T:
    for module in modules:
        _import(timer, module)
    with side_stream(device):  # weights go up beside Whisper's warmup decoding, not queued behind it
        return load(*args)


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
