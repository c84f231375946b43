"""Annotated dependencies: routes read the app's state through these, tests override them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.control.admission import AdmissionGate
from app.control.budget import Budgets
from app.engine.pipeline import TranscriptionPipeline
from app.errors import NotReady, retry_later
from app.http.auth import CurrentTenant
from app.http.metrics import ServiceMetrics
from app.jobs.service import JobService
from app.jobs.system import JobSystem
from app.serving.loader import ModelRegistry, Phase


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


def get_gate(request: Request) -> AdmissionGate:
    gate: AdmissionGate = request.app.state.gate
    return gate


def get_budgets(request: Request) -> Budgets:
    budgets: Budgets = request.app.state.budgets
    return budgets


def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


def get_pipeline(registry: Annotated[ModelRegistry, Depends(get_registry)]) -> TranscriptionPipeline:
    if registry.settings.role == "api":
        raise NotReady("This process (ROLE=api) loads no model: submit the file as a job, POST /v1/jobs.")
    if registry.phase is Phase.FAILED:
        raise NotReady(f"The service failed to start: {registry.failure}")
    if registry.phase is not Phase.READY or registry.pipeline is None:
        raise NotReady(f"The service is {registry.phase.value}; retry shortly.", headers=retry_later())
    return registry.pipeline


def get_jobs(request: Request) -> JobService:
    jobs: JobSystem = request.app.state.jobs
    if jobs.service is None:
        reason = f": {jobs.failure}" if jobs.failure else ""
        raise NotReady(f"The job store is not open yet{reason}.", headers=retry_later())
    return jobs.service


def get_job_tenant(tenant: CurrentTenant, jobs: Annotated[JobService, Depends(get_jobs)]) -> str:
    """The request's tenant id in the job store (app/jobs/keys.py), derived once per request."""
    return jobs.tenant_of(tenant.identity)


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
GateDep = Annotated[AdmissionGate, Depends(get_gate)]
BudgetsDep = Annotated[Budgets, Depends(get_budgets)]
PipelineDep = Annotated[TranscriptionPipeline, Depends(get_pipeline)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
JobTenantDep = Annotated[str, Depends(get_job_tenant)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
