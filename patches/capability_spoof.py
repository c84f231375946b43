"""Report an older compute capability for a GPU the installed CUDA stack cannot compile for.

What it fixes: torch's run-time compiled kernels (jiterator, via NVRTC) are built for the
device's own architecture. When the NVRTC that torch loads does not know that architecture
(SM_121 / DGX Spark GB10 under CUDA 12.8), they fail with ``nvrtc: error: invalid value for
--gpu-architecture``; when torch carries no machine code or PTX the device can run, its
precompiled kernels fail too, and Python code that picks kernels from the capability (torch's
checks, Lightning, pyannote) asks for code nobody built. Reporting the newest capability
that both can serve keeps those paths on code that exists.

The rule (``decide``) spoofs exactly when that failure would happen:
- NVRTC cannot compile for the device: ``sm_XY`` is missing from the architectures the
  ``libnvrtc`` torch loaded reports (``nvrtcGetSupportedArchs``); or
- torch has nothing the device can run: no ``sm_XY'`` of the same major with ``Y' <= Y``
  (machine code is binary compatible within a major version; ``sm_90a``-style arch-specific
  code only on its own architecture) and no ``compute_X'Y'`` PTX at or below the device.
With torch 2.11 (CUDA 13.0: ``sm_120`` machine code, an NVRTC that knows ``sm_121``) nothing
is spoofed on GB10 — and must not be: reporting 9.0 there would steer capability-gated code to
Hopper-only instructions (wgmma, TMA) that GB10 lacks.
Applies to: torch 2.x. Patched: ``torch.cuda.get_device_capability`` and
``torch.cuda.get_device_properties`` (``.major``/``.minor``), the two places the pipeline's
libraries read the capability from.
Remove when: no supported torch ships an NVRTC or arch list older than the GPUs users run.

Mode from ``CUDA_CAPABILITY_SPOOF``: ``auto`` (default) applies the rule; ``on`` always
spoofs; ``off`` never does. ``CUDA_CAPABILITY_SPOOF_TARGET`` forces the reported value (e.g.
``9.0``); by default (``auto``) it is the newest capability at or below the device's that
torch has machine code for and NVRTC can compile for (12.0 for GB10 on CUDA 12.8).

Importing this module does not import torch: ``sitecustomize`` calls ``install_import_hook``,
which patches torch right after torch itself is first imported (importing torch at
interpreter start would slow every ``python`` call by seconds).
"""

from __future__ import annotations

import ctypes
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

logger = logging.getLogger("patches.capability_spoof")

_ARCH = re.compile(r"^(sm|compute)_(\d+)(\d)([a-z]?)$")
_INSTALLED_FLAG = "_capability_spoof_installed"
# Where nothing better can be chosen (no arch in common): the last capability whose code runs
# from PTX on every newer GPU.
FALLBACK_TARGET = (9, 0)

Capability = tuple[int, int]


@dataclass(frozen=True)
class Decision:
    spoof: bool
    native: Capability
    reported: Capability
    reason: str


@dataclass(frozen=True)
class _Arch:
    kind: str  # "sm" (machine code) or "compute" (PTX)
    capability: Capability
    suffix: str  # "a": arch-specific, runs only on its own architecture; "f": family

    def runs_on(self, device: Capability) -> bool:
        if self.kind == "compute":
            return self.capability <= device
        if self.suffix == "a":
            return self.capability == device
        return self.capability[0] == device[0] and self.capability[1] <= device[1]


def _parse_archs(arch_list: Iterable[str]) -> list[_Arch]:
    parsed = []
    for arch in arch_list:
        if m := _ARCH.match(arch.strip()):
            parsed.append(_Arch(m[1], (int(m[2]), int(m[3])), m[4]))
    return parsed


def _sm(capability: Capability) -> str:
    return f"sm_{capability[0]}{capability[1]}"


def parse_target(value: str | None) -> Capability | None:
    """``"9.0"`` -> (9, 0); ``None``/``"auto"`` -> None (choose from what is installed)."""
    if not value or value.strip().lower() == "auto":
        return None
    major, _, minor = value.strip().partition(".")
    return int(major), int(minor or 0)


def decide(
    mode: str,
    native: Capability,
    arch_list: Iterable[str],
    nvrtc_archs: Iterable[int] | None,
    target: Capability | None = None,
) -> Decision:
    """The whole rule, as a pure function of what torch and its NVRTC report.

    ``arch_list`` is ``torch.cuda.get_arch_list()``; ``nvrtc_archs`` the architectures
    (e.g. 90, 120, 121) of the libnvrtc torch loaded, or None where it could not be asked.
    """
    archs = _parse_archs(arch_list)
    nvrtc = None if nvrtc_archs is None else {int(a) for a in nvrtc_archs}
    reported = target or _best_target(native, archs, nvrtc)
    if mode == "off":
        return Decision(False, native, native, "CUDA_CAPABILITY_SPOOF=off")
    if mode == "on":
        return Decision(True, native, reported, "CUDA_CAPABILITY_SPOOF=on")
    number = native[0] * 10 + native[1]
    problems = []
    if nvrtc is not None and number not in nvrtc:
        problems.append(f"NVRTC cannot compile for {_sm(native)} (it knows up to sm_{max(nvrtc, default=0)})")
    runnable = [a for a in archs if a.runs_on(native)]
    if not runnable:
        listed = " ".join(f"{a.kind}_{a.capability[0]}{a.capability[1]}{a.suffix}" for a in archs) or "none"
        problems.append(f"torch has no machine code or PTX that runs on {_sm(native)} (built for: {listed})")
    if problems:
        return Decision(True, native, reported, "; ".join(problems))
    served_by = max(runnable, key=lambda a: (a.kind == "sm", a.capability))
    how = f"torch's {served_by.kind}_{served_by.capability[0]}{served_by.capability[1]}{served_by.suffix} runs on it"
    nvrtc_note = "NVRTC compiles for it" if nvrtc is not None else "NVRTC not found, so not asked"
    return Decision(False, native, native, f"{_sm(native)}: {how}; {nvrtc_note}")


def _best_target(native: Capability, archs: list[_Arch], nvrtc: set[int] | None) -> Capability:
    """The newest capability at or below the device that torch has machine code for and NVRTC
    compiles for: what the libraries should believe they run on."""
    candidates = [
        a.capability
        for a in archs
        if a.kind == "sm"
        and a.suffix != "a"
        and a.capability <= native
        and (nvrtc is None or a.capability[0] * 10 + a.capability[1] in nvrtc)
    ]
    return max(candidates, default=FALLBACK_TARGET)


def nvrtc_supported_archs(cuda_version: str | None) -> list[int] | None:
    """Ask the libnvrtc torch uses which architectures it compiles for; None if none is found.

    torch preloads its NVRTC (the pip ``nvidia`` packages or the system's CUDA), so the one
    already mapped into this process is the one its kernels get; otherwise the one the
    dynamic loader finds for torch's CUDA major version.
    """
    library = None
    for path in _mapped_libraries():
        name = os.path.basename(path)
        if name.startswith("libnvrtc.so") or (name.startswith("libnvrtc-") and "builtins" not in name):
            library = path
            break
    if library is None and cuda_version:
        library = f"libnvrtc.so.{cuda_version.split('.')[0]}"
    if library is None:
        return None
    try:
        nvrtc = ctypes.CDLL(library)
        count = ctypes.c_int()
        if nvrtc.nvrtcGetNumSupportedArchs(ctypes.byref(count)) != 0:
            return None
        archs = (ctypes.c_int * count.value)()
        if nvrtc.nvrtcGetSupportedArchs(archs) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return list(archs)


def _mapped_libraries() -> list[str]:
    try:
        with open("/proc/self/maps") as maps:
            return sorted({line.split()[-1] for line in maps if ".so" in line})
    except OSError:
        return []


class CapabilitySpoof:
    """Wraps torch.cuda's capability functions; decides per device on first use, logs once."""

    def __init__(
        self,
        torch: ModuleType,
        mode: str,
        target: Capability | None,
        nvrtc_archs: Callable[[], list[int] | None] | None = None,
    ) -> None:
        self._cuda = torch.cuda
        cuda_version = getattr(getattr(torch, "version", None), "cuda", None)
        self._nvrtc_archs = nvrtc_archs or (lambda: nvrtc_supported_archs(cuda_version))
        self._original_properties = torch.cuda.get_device_properties
        self._mode = mode
        self._target = target
        self._decisions: dict[int, Decision] = {}
        # Re-entrant: torch's own _lazy_init asks for the capability while a decision is made.
        self._lock = threading.RLock()

    def decision(self, device: Any = None) -> Decision:
        index = self._index(device)
        with self._lock:
            if index not in self._decisions:
                # From the original properties: torch's get_device_capability (2.11) calls the
                # module's get_device_properties, which is this patch's, so asking it would recurse.
                properties = self._original_properties(index)
                made = decide(
                    self._mode,
                    (int(properties.major), int(properties.minor)),
                    list(self._cuda.get_arch_list()),
                    self._nvrtc_archs(),
                    self._target,
                )
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

    def get_device_capability(self, device: Any = None) -> Capability:
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

    def __init__(self, inner: Any, reported: Capability) -> None:
        self._inner = inner
        self.major, self.minor = reported

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return f"{self._inner!r} (capability reported as {self.major}.{self.minor})"


def install(
    torch: ModuleType,
    mode: str | None = None,
    target: str | None = None,
    nvrtc_archs: Callable[[], list[int] | None] | None = None,
) -> CapabilitySpoof | None:
    """Patch ``torch.cuda``; idempotent. Returns the active spoof, or None when mode is off.

    ``nvrtc_archs`` replaces the NVRTC query (tests; the default asks the loaded libnvrtc)."""
    existing = getattr(torch.cuda, _INSTALLED_FLAG, None)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    mode = (mode or os.environ.get("CUDA_CAPABILITY_SPOOF", "auto")).lower()
    if mode not in ("auto", "on", "off"):
        logger.warning("CUDA_CAPABILITY_SPOOF=%r is not auto/on/off; using auto", mode)
        mode = "auto"
    if mode == "off":
        return None
    target_setting = target or os.environ.get("CUDA_CAPABILITY_SPOOF_TARGET")
    spoof = CapabilitySpoof(torch, mode, parse_target(target_setting), nvrtc_archs)
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
