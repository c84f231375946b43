"""Report compute capability (9, 0) for a GPU the installed CUDA toolchain cannot compile for.

What it fixes: on Blackwell SM_121 (DGX Spark GB10) with a torch built for CUDA ≤ 12.8, the
native architecture is newer than anything in ``torch.cuda.get_arch_list()``. Python code
that picks kernels, dtypes or compile targets from the capability (torch's own checks,
Lightning, pyannote's device handling) then refuses the device or asks for code nobody can
build. Reporting (9, 0) keeps those paths on Hopper-compatible code, which the driver runs
from PTX, compiled once into the persistent CUDA cache (run.sh).
Applies to: torch 2.x. Patched: ``torch.cuda.get_device_capability`` and
``torch.cuda.get_device_properties`` (``.major``/``.minor``), the two places the pipeline's
libraries read the capability from.
Remove when: the image's torch ships SASS or PTX for the target architecture.

Mode from ``CUDA_CAPABILITY_SPOOF``: ``auto`` (default) spoofs only when the device's native
``sm_XY`` is missing from ``torch.cuda.get_arch_list()`` *and* newer than every architecture
listed there; ``on`` always spoofs; ``off`` never does. ``CUDA_CAPABILITY_SPOOF_TARGET``
changes the reported value (default ``9.0``).

Importing this module does not import torch: ``sitecustomize`` calls ``install_import_hook``,
which patches torch right after torch itself is first imported (importing torch at
interpreter start would slow every ``python`` call by seconds).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

logger = logging.getLogger("patches.capability_spoof")

_ARCH = re.compile(r"^(?:sm|compute)_(\d+)(\d)[a-z]?$")
_INSTALLED_FLAG = "_capability_spoof_installed"


@dataclass(frozen=True)
class Decision:
    spoof: bool
    native: tuple[int, int]
    reported: tuple[int, int]
    reason: str


def parse_target(value: str | None) -> tuple[int, int]:
    major, _, minor = (value or "9.0").partition(".")
    return int(major), int(minor or 0)


def decide(mode: str, native: tuple[int, int], arch_list: list[str], target: tuple[int, int]) -> Decision:
    """The whole rule, as a pure function of what torch reports."""
    archs = sorted({(int(m[1]), int(m[2])) for a in arch_list if (m := _ARCH.match(a))})
    if mode == "off":
        return Decision(False, native, native, "CUDA_CAPABILITY_SPOOF=off")
    if mode == "on":
        return Decision(True, native, target, "CUDA_CAPABILITY_SPOOF=on")
    if native in archs:
        return Decision(False, native, native, f"sm_{native[0]}{native[1]} is in torch's arch list")
    if archs and native > archs[-1]:
        newest = f"sm_{archs[-1][0]}{archs[-1][1]}"
        return Decision(True, native, target, f"sm_{native[0]}{native[1]} is newer than torch's newest arch {newest}")
    return Decision(False, native, native, "torch can run this architecture (older, PTX-compatible)")


class CapabilitySpoof:
    """Wraps torch.cuda's capability functions; decides per device on first use, logs once."""

    def __init__(self, torch: ModuleType, mode: str, target: tuple[int, int]) -> None:
        self._cuda = torch.cuda
        self._original_capability = torch.cuda.get_device_capability
        self._original_properties = torch.cuda.get_device_properties
        self._mode = mode
        self._target = target
        self._decisions: dict[int, Decision] = {}
        self._lock = threading.Lock()

    def decision(self, device: Any = None) -> Decision:
        index = self._index(device)
        with self._lock:
            if index not in self._decisions:
                native = tuple(self._original_capability(index))
                made = decide(self._mode, (native[0], native[1]), list(self._cuda.get_arch_list()), self._target)
                self._decisions[index] = made
                level = logging.WARNING if made.spoof else logging.INFO
                logger.log(
                    level,
                    "GPU %d: native capability %s, reporting %s (%s)",
                    index,
                    made.native,
                    made.reported,
                    made.reason,
                )
            return self._decisions[index]

    def get_device_capability(self, device: Any = None) -> tuple[int, int]:
        return self.decision(device).reported

    def get_device_properties(self, device: Any = None) -> Any:
        properties = self._original_properties(device if device is not None else self._cuda.current_device())
        made = self.decision(device)
        return _SpoofedProperties(properties, made.reported) if made.spoof else properties

    def _index(self, device: Any) -> int:
        if device is None:
            return int(self._cuda.current_device())
        if isinstance(device, int):
            return device
        if isinstance(device, str):
            device = device.split(":")[1] if ":" in device else self._cuda.current_device()
            return int(device)
        index = getattr(device, "index", None)
        return int(self._cuda.current_device() if index is None else index)


class _SpoofedProperties:
    """Device properties with ``major``/``minor`` replaced; everything else passes through."""

    def __init__(self, inner: Any, reported: tuple[int, int]) -> None:
        self._inner = inner
        self.major, self.minor = reported

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"{self._inner!r} (capability reported as {self.major}.{self.minor})"


def install(torch: ModuleType, mode: str | None = None, target: str | None = None) -> CapabilitySpoof | None:
    """Patch ``torch.cuda``; idempotent. Returns the active spoof, or None when mode is off."""
    existing = getattr(torch.cuda, _INSTALLED_FLAG, None)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    mode = (mode or os.environ.get("CUDA_CAPABILITY_SPOOF", "auto")).lower()
    if mode not in ("auto", "on", "off"):
        logger.warning("CUDA_CAPABILITY_SPOOF=%r is not auto/on/off; using auto", mode)
        mode = "auto"
    if mode == "off":
        return None
    spoof = CapabilitySpoof(torch, mode, parse_target(target or os.environ.get("CUDA_CAPABILITY_SPOOF_TARGET")))
    torch.cuda.get_device_capability = spoof.get_device_capability
    torch.cuda.get_device_properties = spoof.get_device_properties
    setattr(torch.cuda, _INSTALLED_FLAG, spoof)
    return spoof


def active(torch: ModuleType) -> CapabilitySpoof | None:
    return getattr(torch.cuda, _INSTALLED_FLAG, None)


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """One-shot finder: lets ``torch`` import normally, then installs the spoof."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _LoaderThenPatch(spec.loader)
        return spec


class _LoaderThenPatch(importlib.abc.Loader):
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        module.__spec__.loader = self._inner  # type: ignore[union-attr]
        try:
            install(module)
        except Exception:  # a broken patch must never break `import torch`
            logger.exception("capability spoof could not be installed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def install_import_hook() -> None:
    """Patch torch when it is imported (or now, if it already is)."""
    if "torch" in sys.modules:
        install(sys.modules["torch"])
    elif not any(isinstance(f, _PatchAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchAfterImport())
