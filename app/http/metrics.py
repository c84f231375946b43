"""Prometheus metrics: GET /metrics, in the text format every scraper reads.

Two kinds of figures, one registry per app (so tests and several apps in one process do not
share counters):
- events, counted as they happen: HTTP requests (``RequestMetrics``, an ASGI middleware that
  labels by route template, never by raw path, so label sets stay bounded), and each
  transcription's audio seconds and per-stage seconds (``observe_transcript``);
- state, read when scraped (``_StateCollector``) from what the service already keeps for
  ``/health``: admission, budgets, the Whisper scheduler, GPU memory, start-up steps, build.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import __version__
from app.control.admission import AdmissionGate
from app.control.budget import Budgets
from app.http.auth import require_api_key_for_health
from app.jobs.system import JobSystem
from app.serving.status import ServiceState, ServiceStatus
from app.transcript import Transcript

_PREFIX = "transcription"
logger = logging.getLogger(__name__)
# Request durations span a health probe (milliseconds) to an hour of audio on a CPU.
_DURATION_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
_BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256)


class ServiceMetrics:
    """The event counters; the state is read at scrape time by a ``StateCollector`` registered beside them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            f"{_PREFIX}_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.tenant_requests = Counter(
            f"{_PREFIX}_tenant_http_requests",
            "Authenticated requests by tenant (API_KEYS' names, `key-N` for an unnamed key; never the key).",
            ["tenant", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            f"{_PREFIX}_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, upload included.",
            ["route", "method"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            f"{_PREFIX}_audio_seconds",
            "Seconds of audio transcribed (or translated), by task.",
            ["task"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            f"{_PREFIX}_stage_seconds",
            "Seconds each transcription spent in each stage (decode, vad, language_detection, asr, "
            "alignment, diarization, total); asr and alignment include waiting for shared batches.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )

    def observe_transcript(self, transcript: Transcript) -> None:
        self.audio_seconds.labels(transcript.task).inc(transcript.duration)
        for stage, seconds in transcript.timings.items():
            # Parts of a stage are counted with it: features in asr, pyannote's steps in diarization.
            if stage != "features" and not stage.startswith("diarization_"):
                self.stage_seconds.labels(stage).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by the route that answered it."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            # A client may send any token as its method: labels take the known ones only (bounded series).
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.requests.labels(route, method, str(status)).inc()
            if (tenant := scope.get("state", {}).get("tenant")) is not None:  # set by app/http/auth.py
                self.metrics.tenant_requests.labels(tenant, route, str(status)).inc()
            self.metrics.request_seconds.labels(route, method).observe(time.perf_counter() - started)


class StateCollector(Collector):
    """The service's state at scrape time: one ``ServiceStatus`` snapshot, admission, budgets, jobs."""

    def __init__(self, state: ServiceState, gate: AdmissionGate, budgets: Budgets, jobs: JobSystem) -> None:
        self.state = state
        self.gate = gate
        self.budgets = budgets
        self.jobs = jobs

    def collect(self) -> Iterator[Metric]:
        status = self.state.snapshot()
        yield from self._service(status)
        yield from self._admission()
        yield from self._scheduler(status)
        yield from self._models(status)
        yield from self._gpu(status)
        yield from self._jobs()

    def _jobs(self) -> Iterator[Metric]:
        service, runner = self.jobs.service, self.jobs.runner
        if service is None or runner is None:
            return
        try:
            counts = service.counts()
        except Exception:  # the shared store is down: the scrape still answers
            logger.exception("Could not count jobs for /metrics")
            return
        # The whole store's queue (shared by every worker of a scale-out): what autoscaling reads.
        jobs = GaugeMetricFamily(f"{_PREFIX}_jobs", "Jobs in the job store, by state.", labels=["state"])
        for state, count in counts.items():
            jobs.add_metric([state.value], count)
        yield jobs
        yield _gauge("jobs_running_here", "Jobs this process is running now.", runner.running)

    def _service(self, status: ServiceStatus) -> Iterator[Metric]:
        info = InfoMetricFamily(f"{_PREFIX}_build", "The running service: version, model and where it runs.")
        info.add_metric(
            [],
            {
                "version": __version__,
                "model": status.model or "",
                "device": status.device or "",
                "compute_type": status.compute_type or "",
                "diarization_device": status.diarization_device or "",
            },
        )
        yield info
        yield _gauge("ready", "1 once every model is loaded and warmed up.", 1.0 if status.ready else 0.0)
        startup = GaugeMetricFamily(
            f"{_PREFIX}_startup_seconds",
            "Seconds each start-up step took: before_load, accelerator_check, cuda_init, the model loads "
            "(whisper, vad, aligners, diarizer), whisper_warmup (GPU), load_total, warmup.",
            labels=["step"],
        )
        for step, seconds in status.startup_s.items():
            startup.add_metric([step], seconds)
        yield startup
        yield _gauge(
            "gc_frozen_objects",
            "Objects made at start-up that garbage collection no longer walks (frozen once ready).",
            gc.get_freeze_count(),
        )

    def _admission(self) -> Iterator[Metric]:
        gate = self.gate
        yield _gauge("in_flight", "Transcriptions admitted: uploading, decoding, queued or running.", gate.in_flight)
        yield _gauge("in_flight_limit", "MAX_PENDING_REQUESTS.", gate.limit)
        yield _counter(
            "rejected", "Requests refused at admission: over MAX_PENDING_REQUESTS, or draining.", gate.refused
        )
        yield _counter("cancelled", "Transcriptions stopped early: client disconnected, or shutdown.", gate.cancelled)
        used = GaugeMetricFamily(f"{_PREFIX}_budget_used_bytes", "Bytes held now.", labels=["budget"])
        limit = GaugeMetricFamily(f"{_PREFIX}_budget_limit_bytes", "The budget's size.", labels=["budget"])
        refused = CounterMetricFamily(
            f"{_PREFIX}_budget_refused", "Reservations refused (each a 503).", labels=["budget"]
        )
        for name, budget in (("memory", self.budgets.memory), ("disk", self.budgets.disk)):
            used.add_metric([name], budget.used)
            limit.add_metric([name], budget.limit)
            refused.add_metric([name], budget.refused)
        yield from (used, limit, refused)

    def _scheduler(self, status: ServiceStatus) -> Iterator[Metric]:
        if status.batching is None:
            return
        stats = status.batching.stats
        prefix = "scheduler"
        yield _counter(f"{prefix}_batches", "Whisper batches run (warmup included).", stats.batches)
        yield _counter(f"{prefix}_windows", "30 s windows run in those batches.", stats.items)
        yield _counter(
            f"{prefix}_joined_windows", "Of those, windows that joined a running batch as another ended.", stats.joined
        )
        yield _gauge(f"{prefix}_replicas", "Batches the scheduler runs at once (WHISPER_REPLICAS).", stats.workers)
        yield _counter(
            f"{prefix}_busy_seconds", "Seconds spent running batches, summed over the replicas.", stats.busy_s
        )
        yield _gauge(f"{prefix}_waiting_windows", "Windows queued for the encoder and decoder.", stats.waiting_items)
        yield _gauge(f"{prefix}_running_windows", "Windows in the batches on the device now.", stats.running_items)
        yield _histogram(
            f"{prefix}_batch_size", "Windows per batch: how full the scheduler keeps the GPU.", stats.batch_sizes
        )
        calls = CounterMetricFamily(
            f"{_PREFIX}_model_seconds", "Seconds inside Whisper model calls, by kind.", labels=["call"]
        )
        for call, seconds in status.batching.model_s.items():
            calls.add_metric([call], seconds)
        yield calls
        yield _counter(
            "decoded_tokens", "Text tokens Whisper decoded (end of text not counted).", status.batching.decoded_tokens
        )

    def _models(self, status: ServiceStatus) -> Iterator[Metric]:
        loads = CounterMetricFamily(f"{_PREFIX}_model_loads", "Loads of each Whisper model.", labels=["model"])
        unloads = CounterMetricFamily(
            f"{_PREFIX}_model_unloads", "Unloads of each Whisper model (idle, or for room).", labels=["model"]
        )
        loaded = GaugeMetricFamily(f"{_PREFIX}_model_loaded", "1 while the model is loaded.", labels=["model"])
        in_use = GaugeMetricFamily(f"{_PREFIX}_model_in_use", "Requests using the model now.", labels=["model"])
        for model in status.models:
            loads.add_metric([model.id], model.loads)
            unloads.add_metric([model.id], model.unloads)
            loaded.add_metric([model.id], 1.0 if model.state == "loaded" else 0.0)
            in_use.add_metric([model.id], model.in_use)
        yield from (loads, unloads, loaded, in_use)

    def _gpu(self, status: ServiceStatus) -> Iterator[Metric]:
        memory = status.gpu_memory
        if memory is None:
            return
        mib = 1024 * 1024
        yield _gauge("gpu_memory_used_bytes", "Device memory in use, all processes.", memory.used_mb * mib)
        yield _gauge("gpu_torch_allocated_bytes", "Held by live torch tensors.", memory.torch_allocated_mb * mib)
        yield _gauge("gpu_torch_reserved_bytes", "Kept by torch's caching allocator.", memory.torch_reserved_mb * mib)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{_PREFIX}_{name}", documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{_PREFIX}_{name}", documentation, value=value)


def _histogram(name: str, documentation: str, counts: dict[int, int]) -> HistogramMetricFamily:
    """A histogram from exact counts per value (the scheduler counts batches by size)."""
    buckets: list[tuple[str, float]] = []
    for bound in (*_BATCH_BUCKETS, float("inf")):
        cumulative = sum(n for size, n in counts.items() if size <= bound)
        buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
    total = sum(size * n for size, n in counts.items())
    return HistogramMetricFamily(f"{_PREFIX}_{name}", documentation, buckets=buckets, sum_value=total)


router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}},
    dependencies=[Depends(require_api_key_for_health)],  # open to scrapers unless HEALTH_REQUIRES_KEY
)
def metrics(request: Request) -> Response:
    service: ServiceMetrics = request.app.state.metrics
    return Response(service.exposition(), media_type=CONTENT_TYPE_LATEST)
