"""The application factory and its lifespan.

``create_app()`` builds the app; the lifespan starts loading every model in a background
thread (so ``/health`` answers ``loading`` meanwhile) into one ``ModelRegistry`` on
``app.state``. Run with ``uvicorn --factory app.main:create_app`` or ``python -m app``.
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
from app.http import metrics
from app.http.auth import ApiKeyRequired, ApiKeys
from app.http.body_limit import BodySizeLimit
from app.http.error_handlers import install_error_handlers
from app.http.metrics import RequestMetrics, ServiceMetrics
from app.http.routes import health, openai_audio, transcribe, web
from app.http.routes import jobs as jobs_routes
from app.jobs.system import JobSystem
from app.runtime.accelerator import AcceleratorUnavailable, choose_device
from app.runtime.network import apply_download_policy
from app.serving.loader import ModelRegistry

logger = logging.getLogger("app")

# Multipart framing around the file: boundaries, part headers and the small text fields.
_MULTIPART_ALLOWANCE = 1024 * 1024


def _start_loading(registry: ModelRegistry) -> None:
    threading.Thread(target=registry.load, name="model-loader", daemon=True).start()


def create_app(settings: Settings | None = None, registry: ModelRegistry | None = None) -> FastAPI:
    """Build the service. Pass a prepared ``registry`` (tests) to skip model loading."""
    settings = settings or settings_or_exit()  # `uvicorn --factory`: a bad setting in one line, not a traceback
    configure_logging(settings.log_level)
    apply_download_policy(settings)
    preloaded = registry is not None
    registry = registry or ModelRegistry(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loads_models = not preloaded and settings.role == "all"
        if settings.role == "api":
            registry.without_models()
        if loads_models and settings.device == "cuda":
            # Refuse to start rather than serve from somewhere the operator did not ask for.
            # CTranslate2 answers in milliseconds; torch's answer (its import and CUDA's
            # initialisation: seconds) comes from the loading threads, which start meanwhile.
            try:
                choose_device("cuda", registry.check_accelerator())
                _start_loading(registry)
                choose_device("cuda", await asyncio.to_thread(registry.verified_accelerator))
            except AcceleratorUnavailable as exc:
                logger.error("%s", exc)
                raise
        elif loads_models:
            _start_loading(registry)
        jobs.start()
        yield
        jobs.close()  # running jobs go back to the queue before the models stop
        registry.close()

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
    app.state.registry = registry
    app.state.gate = gate = AdmissionGate(settings.max_pending_requests)
    app.state.budgets = budgets = Budgets.for_settings(settings)
    # Job workers stop claiming as soon as a drain starts (SIGTERM), like admission does.
    app.state.jobs = jobs = JobSystem(settings, budgets, lambda: None if gate.draining else registry.ready_pipeline())
    app.state.metrics = service_metrics = ServiceMetrics(registry, gate, budgets, jobs)
    jobs.on_transcript = service_metrics.observe_transcript
    app.add_middleware(RequestMetrics, metrics=service_metrics)  # outermost: it sees every answer, 413s too
    app.state.api_keys = ApiKeys(settings)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(transcribe.router, dependencies=[ApiKeyRequired])
    app.include_router(openai_audio.router, dependencies=[ApiKeyRequired])
    app.include_router(jobs_routes.router, dependencies=[ApiKeyRequired])
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.WEB_DIR), name="static")
    return app


class _HealthProbeFilter(logging.Filter):
    """Keep health probes (every few seconds, from Docker or a load balancer) out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (isinstance(args, tuple) and len(args) >= 3 and str(args[2]).startswith("/health"))


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("app").setLevel(level.upper())
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _HealthProbeFilter) for f in access.filters):
        access.addFilter(_HealthProbeFilter())
