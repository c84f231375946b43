"""GET /health (readiness, with why a stage is missing) and GET /health/live (liveness).

Both are ``async`` and read only in-memory state, so they answer at once even while every
worker thread is busy transcribing.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from app import __version__
from app.control.admission import AdmissionGate
from app.control.budget import ByteBudget
from app.errors import retry_later
from app.http.auth import require_api_key_for_health
from app.http.deps import BudgetsDep, GateDep, LiveSessionsDep, ServiceStateDep, SettingsDep
from app.runtime.accelerator import AcceleratorCheck
from app.serving.status import BatchingStatus, Phase, ServiceStatus
from app.wire.schemas import (
    AcceleratorOut,
    AcceleratorProblemOut,
    BatchingOut,
    BudgetOut,
    CapabilityOut,
    GpuLibraryOut,
    GpuMemoryOut,
    HealthResponse,
    JitCacheOut,
    ModelOut,
    QueueOut,
    RealtimeOut,
    StageOut,
    StartupSpanOut,
    WarmupOut,
)

router = APIRouter(tags=["health"])


def _status(status: ServiceStatus, gate: AdmissionGate, waiting: list[str]) -> str:
    if gate.draining:
        return "draining"
    if status.phase is Phase.READY and waiting:  # ready, but not every stage ``require`` names is in
        return "loading"
    if status.phase is Phase.READY:
        return "degraded" if status.degraded else "healthy"
    return status.phase.value


@router.get(
    "/health",
    dependencies=[Depends(require_api_key_for_health)],
    response_model=HealthResponse,
    responses={
        503: {"model": HealthResponse, "description": "Loading, warming up, failed to start, or draining for shutdown."}
    },
)
async def health(
    state: ServiceStateDep,
    gate: GateDep,
    budgets: BudgetsDep,
    settings: SettingsDep,
    live: LiveSessionsDep,
    require: Annotated[
        str | None,
        Query(
            description="`all` (or a comma list of stages: `diarization`): answer 503 while any of them is still "
            "loading after ready. Without it, 200 means ready to transcribe; requests wanting a stage that "
            "still loads wait for it.",
            pattern=r"^(all|asr|alignment|diarization)(,(all|asr|alignment|diarization))*$",
            max_length=64,
        ),
    ] = None,
) -> JSONResponse:
    status = state.snapshot()
    gpu = status.gpu
    waiting = _still_loading(status, require)
    ready = status.ready and not gate.draining and not waiting
    body = HealthResponse(
        status=_status(status, gate, waiting),  # type: ignore[arg-type]
        service=settings.service_name,
        version=__version__,
        device=status.device,
        diarization_device=status.diarization_device,
        model=status.model,
        compute_type=status.compute_type,
        engine=status.engine,
        cuda_available=gpu.cuda_available if gpu else None,
        gpu=gpu.name if gpu else None,
        compute_capability=gpu.compute_capability if gpu else None,
        capability=CapabilityOut(
            native=gpu.native_capability,
            reported=gpu.compute_capability,
            spoofed=gpu.capability_spoofed,
            reason=gpu.spoof_reason,
        )
        if gpu and gpu.cuda_available
        else None,
        accelerator=_accelerator(status.accelerator) if status.accelerator else None,
        stages={name: StageOut(**asdict(stage)) for name, stage in status.stages.items()},
        degraded=list(status.degraded) if ready else [],
        loading=list(status.loading),
        failure=status.failure,
        startup_s=dict(status.startup_s),
        startup_timeline=[StartupSpanOut(**asdict(span)) for span in status.startup_timeline],
        warmup=WarmupOut(**asdict(status.warmup)) if status.warmup else None,
        jit_cache=JitCacheOut(**asdict(status.jit_cache)) if status.jit_cache else None,
        queue=QueueOut(
            in_flight=gate.in_flight,
            limit=gate.limit,
            refused=gate.refused,
            cancelled=gate.cancelled,
            draining=gate.draining,
            budgets={"memory": _budget(budgets.memory), "disk": _budget(budgets.disk)},
            batching=_batching(status.batching) if status.batching else None,
            realtime=RealtimeOut(
                sessions=live.open,
                limit=live.limit,
                opened=live.opened,
                refused=live.refused,
                partial_model=state.partial_model,
            ),
        ),
        gpu_memory=GpuMemoryOut(**asdict(status.gpu_memory)) if status.gpu_memory else None,
        models=[ModelOut.of(model) for model in status.models],
    )
    if ready:
        return JSONResponse(body.model_dump())
    return JSONResponse(body.model_dump(), status_code=503, headers=retry_later())


def _still_loading(status: ServiceStatus, require: str | None) -> list[str]:
    """The stages ``require`` names (``all``: every one) that are still loading."""
    if not require:
        return []
    wanted = set(require.split(","))  # stage names only: the parameter's pattern refuses the rest (422)
    return [name for name in status.loading if "all" in wanted or name in wanted]


def _budget(budget: ByteBudget) -> BudgetOut:
    mib = 1024 * 1024
    return BudgetOut(
        used_mb=round(budget.used / mib, 1),
        limit_mb=round(budget.limit / mib, 1),
        peak_mb=round(budget.peak / mib, 1),
        refused=budget.refused,
    )


def _accelerator(check: AcceleratorCheck) -> AcceleratorOut:
    return AcceleratorOut(
        gpu_present=check.evidence.present,
        evidence=check.evidence.describe(),
        libraries=[GpuLibraryOut(**asdict(package)) for package in check.packages],
        problems=[AcceleratorProblemOut(**asdict(problem)) for problem in check.problems],
    )


def _batching(batching: BatchingStatus) -> BatchingOut:
    stats = batching.stats
    return BatchingOut(
        replicas=stats.workers,
        waiting_jobs=stats.waiting_jobs,
        waiting_windows=stats.waiting_items,
        running_windows=stats.running_items,
        batches=stats.batches,
        windows=stats.items,
        joined_windows=stats.joined,
        mean_batch_size=round((stats.items - stats.joined) / stats.batches, 2) if stats.batches else None,
        busy_s=stats.busy_s,
        model_s=batching.model_s,
        decoded_windows=batching.decoded_windows,
        decoded_tokens=batching.decoded_tokens,
    )


@router.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "alive"}
