"""Which device and precision to use, and what the GPU is, as torch reports it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuInfo:
    cuda_available: bool
    name: str | None
    compute_capability: str | None  # e.g. "SM_90", as torch.cuda.get_device_capability reports it


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(setting: str) -> str:
    if setting == "auto":
        return "cuda" if cuda_available() else "cpu"
    return setting


def resolve_compute_type(setting: str, device: str) -> str:
    if setting == "auto":
        return "float16" if device == "cuda" else "int8"
    return setting


def describe_gpu() -> GpuInfo:
    import torch

    if not torch.cuda.is_available():
        return GpuInfo(False, None, None)
    major, minor = torch.cuda.get_device_capability()
    return GpuInfo(True, torch.cuda.get_device_name(), f"SM_{major}{minor}")
