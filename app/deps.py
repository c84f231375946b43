"""Annotated dependencies: routes read the app's state through these, tests override them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.errors import NotReady, retry_later
from app.metrics import ServiceMetrics
from app.services.admission import AdmissionGate
from app.services.budget import Budgets
from app.services.pipeline import TranscriptionPipeline
from app.services.registry import ModelRegistry, Phase


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
    if registry.phase is Phase.FAILED:
        raise NotReady(f"The service failed to start: {registry.failure}")
    if registry.phase is not Phase.READY or registry.pipeline is None:
        raise NotReady(f"The service is {registry.phase.value}; retry shortly.", headers=retry_later())
    return registry.pipeline


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
GateDep = Annotated[AdmissionGate, Depends(get_gate)]
BudgetsDep = Annotated[Budgets, Depends(get_budgets)]
PipelineDep = Annotated[TranscriptionPipeline, Depends(get_pipeline)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
