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
from app.jobs.service import JobService
from app.jobs.system import JobSystem
from app.live.sessions import LiveSessions
from app.serving.status import ServiceState
from app.serving.transcriber import Transcriber


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_service_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def get_gate(request: Request) -> AdmissionGate:
    gate: AdmissionGate = request.app.state.gate
    return gate


def get_live_sessions(request: Request) -> LiveSessions:
    live: LiveSessions = request.app.state.live
    return live


def get_budgets(request: Request) -> Budgets:
    budgets: Budgets = request.app.state.budgets
    return budgets


def get_transcriber(request: Request) -> Transcriber:
    transcriber: Transcriber = request.app.state.transcriber
    return transcriber


def get_pipeline(transcriber: Annotated[Transcriber, Depends(get_transcriber)]) -> TranscriptionPipeline:
    return transcriber.pipeline()


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
ServiceStateDep = Annotated[ServiceState, Depends(get_service_state)]
GateDep = Annotated[AdmissionGate, Depends(get_gate)]
LiveSessionsDep = Annotated[LiveSessions, Depends(get_live_sessions)]
BudgetsDep = Annotated[Budgets, Depends(get_budgets)]
TranscriberDep = Annotated[Transcriber, Depends(get_transcriber)]
PipelineDep = Annotated[TranscriptionPipeline, Depends(get_pipeline)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
JobTenantDep = Annotated[str, Depends(get_job_tenant)]
