"""The application factory and its lifespan.

``create_app()`` builds the app; the lifespan starts loading every model in a background
thread (so ``/health`` answers ``loading`` meanwhile); the ``ServiceState`` on ``app.state``
holds the pipeline once it is warm. This is the composition root: every long-lived part is
built here once and handed to what uses it. Run with ``uvicorn --factory app.main:create_app`` or ``python -m app``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app import __version__
from app.config import Settings
from app.config_errors import settings_or_exit
from app.control.admission import AdmissionGate
from app.control.budget import Budgets
from app.http import access_log, metrics
from app.http.auth import ApiKeyRequired, ApiKeys
from app.http.body_limit import BodySizeLimit
from app.http.error_handlers import install_error_handlers
from app.http.metrics import RequestMetrics, ServiceMetrics, StateCollector
from app.http.routes import health, openai_audio, realtime, speakers, transcribe, web
from app.http.routes import jobs as jobs_routes
from app.jobs.system import JobSystem
from app.live.sessions import LiveSessions
from app.runtime.accelerator import AcceleratorUnavailable, choose_device
from app.runtime.network import apply_download_policy
from app.serving.loader import ModelLoader
from app.serving.status import ServiceState
from app.serving.transcriber import DecodeLimits, Transcriber

logger = logging.getLogger("app")

# Multipart framing around the file: boundaries, part headers and the small text fields.
_MULTIPART_ALLOWANCE = 1024 * 1024


def create_app(settings: Settings | None = None, state: ServiceState | None = None) -> FastAPI:
    """Build the service: every part once, wired here. Pass a prepared ``state`` (tests) to load no model."""
    settings = settings or settings_or_exit()  # `uvicorn --factory`: a bad setting in one line, not a traceback
    configure_logging(settings.log_level)
    apply_download_policy(settings)
    loads_models = state is None and settings.role == "all"
    state = state or ServiceState(settings)
    loader = ModelLoader(settings, state)
    gate = AdmissionGate(settings.max_pending_requests)
    budgets = Budgets.for_settings(settings)
    service_metrics = ServiceMetrics()
    limits = DecodeLimits(
        settings.decode_timeout_s, settings.max_audio_seconds, settings.ffmpeg_binary, temp_dir=settings.temp_dir
    )
    transcriber = Transcriber(
        state, gate, budgets, limits, service_metrics.observe_transcript, loads_models=settings.role == "all"
    )
    jobs = JobSystem(settings, transcriber)
    service_metrics.registry.register(StateCollector(state, gate, budgets, jobs))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.role == "api":
            state.without_models()
        if loads_models and settings.device == "cuda":
            # Refuse to start rather than serve from somewhere the operator did not ask for.
            # CTranslate2 answers in milliseconds; torch's answer (its import and CUDA's
            # initialisation: seconds) comes from the loading threads, which start meanwhile.
            try:
                choose_device("cuda", loader.check_accelerator())
                _start_loading(loader)
                choose_device("cuda", await asyncio.to_thread(loader.verified_accelerator))
            except AcceleratorUnavailable as exc:
                logger.error("%s", exc)
                raise
        elif loads_models:
            _start_loading(loader)
        jobs.start()
        yield
        jobs.close()  # running jobs go back to the queue before the models stop
        live.close()
        state.close()

    app = FastAPI(
        title="Transcription service",
        version=__version__,
        description="WhisperX transcription with word times, speakers, confidence and language.",
        lifespan=lifespan,
    )
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_upload_bytes + _MULTIPART_ALLOWANCE, limit_mb=settings.max_upload_mb
    )
    app.state.settings = settings
    app.state.service = state
    app.state.gate = gate
    app.state.budgets = budgets
    app.state.transcriber = transcriber
    app.state.jobs = jobs
    live = LiveSessions(settings.max_realtime_sessions)
    app.state.live = live
    app.state.metrics = service_metrics
    app.add_middleware(RequestMetrics, metrics=service_metrics)  # outermost: it sees every answer, 413s too
    app.state.api_keys = ApiKeys(settings)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(transcribe.router, dependencies=[ApiKeyRequired])
    app.include_router(openai_audio.router, dependencies=[ApiKeyRequired])
    app.include_router(jobs_routes.router, dependencies=[ApiKeyRequired])
    app.include_router(speakers.router, dependencies=[ApiKeyRequired])
    app.include_router(realtime.router)  # checks the key itself: browsers send it as a subprotocol
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.WEB_DIR), name="static")
    return app


def _start_loading(loader: ModelLoader) -> None:
    threading.Thread(target=loader.load, name="model-loader", daemon=True).start()


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("app").setLevel(level.upper())
    access_log.install()
