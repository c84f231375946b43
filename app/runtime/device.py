"""Which device and precision to use, what the GPU is, and what the CUDA JIT cache holds."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

# Read by the CUDA driver, not by us: reported so users can see what the process runs with.
CUDA_CACHE_VARIABLES = ("CUDA_CACHE_DISABLE", "CUDA_CACHE_PATH", "CUDA_CACHE_MAXSIZE", "CUDA_FORCE_PTX_JIT")


@dataclass(frozen=True)
class GpuInfo:
    cuda_available: bool
    name: str | None = None
    compute_capability: str | None = None  # as torch.cuda.get_device_capability reports it, e.g. "SM_90"
    native_capability: str | None = None  # what the hardware is, before the Blackwell spoof
    capability_spoofed: bool = False
    spoof_reason: str | None = None


@dataclass(frozen=True)
class JitCacheInfo:
    path: str
    size_bytes: int
    files: int
    environment: dict[str, str | None] = field(default_factory=dict)


def resolve_compute_type(setting: str, device: str) -> str:
    if setting == "auto":
        return "float16" if device == "cuda" else "int8"
    return setting


def _sm(capability: tuple[int, int]) -> str:
    return f"SM_{capability[0]}{capability[1]}"


def describe_gpu() -> GpuInfo:
    import torch

    if not torch.cuda.is_available():
        return GpuInfo(False)
    major, minor = torch.cuda.get_device_capability()
    reported = (int(major), int(minor))
    spoof_module = sys.modules.get("capability_spoof")  # present when patches/sitecustomize ran
    spoof = spoof_module.active(torch) if spoof_module else None
    if spoof is None:
        return GpuInfo(True, torch.cuda.get_device_name(), _sm(reported), _sm(reported))
    decision = spoof.decision()
    return GpuInfo(
        True,
        torch.cuda.get_device_name(),
        _sm(decision.reported),
        _sm(decision.native),
        decision.spoof,
        decision.reason,
    )


@dataclass(frozen=True)
class GpuMemory:
    """Device memory of this process, in MiB, as CUDA sees it and as torch's allocator holds it."""

    used_mb: float  # everything: CTranslate2's Whisper (its own allocator), torch, the CUDA context
    torch_allocated_mb: float  # tensors alive now (VAD, aligner, diarizer)
    torch_reserved_mb: float  # what torch's caching allocator keeps for reuse


def gpu_memory() -> GpuMemory | None:
    """None on CPU, or before anything initialised CUDA (asking must not initialise it)."""
    torch = sys.modules.get("torch")
    # While another thread is still importing torch, the module exists without ``cuda``.
    cuda = getattr(torch, "cuda", None)
    if cuda is None or not hasattr(cuda, "is_initialized") or not cuda.is_initialized():
        return None
    free, total = cuda.mem_get_info()
    mib = 1024 * 1024
    return GpuMemory(
        used_mb=round((total - free) / mib, 1),
        torch_allocated_mb=round(cuda.memory_allocated() / mib, 1),
        torch_reserved_mb=round(cuda.memory_reserved() / mib, 1),
    )


class GpuMemorySampler:
    """Reads ``gpu_memory()`` every ``period_s`` on a thread of its own.

    /health and /metrics answer on the event loop, and asking CUDA (``cudaMemGetInfo``) can wait
    behind the driver calls of the threads running models: they read the last sample instead.
    """

    def __init__(self, period_s: float = 1.0) -> None:
        self.period_s = period_s
        self._latest: GpuMemory | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-memory", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def latest(self) -> GpuMemory | None:
        return self._latest

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while True:
            try:
                self._latest = gpu_memory()
            except Exception:  # a failing driver call must not end the sampling
                self._latest = None
            if self._stop.wait(self.period_s):
                return


def describe_jit_cache() -> JitCacheInfo:
    environment = {name: os.environ.get(name) for name in CUDA_CACHE_VARIABLES}
    path = Path(environment["CUDA_CACHE_PATH"] or Path.home() / ".nv" / "ComputeCache")
    size = files = 0
    if path.is_dir():
        for entry in path.rglob("*"):
            if entry.is_file():
                files += 1
                size += entry.stat().st_size
    return JitCacheInfo(str(path), size, files, environment)
