"""Is there an NVIDIA GPU, and can the libraries of the GPU path (torch; CTranslate2 too with
ENGINE=ctranslate2) use it?

A service that quietly runs on the CPU beside an idle GPU is the worst outcome on a DGX Spark:
PyPI's aarch64 wheels of CTranslate2 (every release) and of torch (before 2.11) are CPU-only
builds, so a plain install there "works" at a hundredth of the speed. This module gathers the
evidence (``probe_*``, which touch the system) and turns it into problems with a fix
(``diagnose``, a pure function the tests drive with every combination).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import mmap
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GpuEvidence:
    """Signs of an NVIDIA GPU that need neither torch nor CTranslate2."""

    device_nodes: tuple[str, ...] = ()  # /dev/nvidia0 ... (present in a container run with --gpus)
    driver_library: str | None = None  # libcuda.so.1, mounted by the NVIDIA container toolkit
    nvidia_smi: str | None = None

    @property
    def present(self) -> bool:
        return bool(self.device_nodes) or self.driver_library is not None or self.nvidia_smi is not None

    def describe(self) -> list[str]:
        found = list(self.device_nodes)
        if self.driver_library:
            found.append(self.driver_library)
        if self.nvidia_smi:
            found.append(self.nvidia_smi)
        return found


@dataclass(frozen=True)
class PackageCuda:
    """What one GPU library says about CUDA: built with it, and how many devices it sees."""

    name: str
    version: str
    built_with_cuda: bool
    devices: int
    error: str | None = None  # why it sees no device, in the library's own words


@dataclass(frozen=True)
class AcceleratorProblem:
    package: str
    version: str
    reason: str
    fix: str

    def message(self) -> str:
        return f"{self.reason}. Fix: {self.fix}"


# Versions the image and the lock use; named in the fixes.
_TORCH_CUDA_SINCE = "2.11"
_CUDA_RUNTIME = "13.0"


class AcceleratorUnavailable(RuntimeError):
    """DEVICE=cuda, and the GPU cannot be used: the service refuses to start."""


@dataclass(frozen=True)
class AcceleratorCheck:
    evidence: GpuEvidence
    packages: tuple[PackageCuda, ...]
    problems: tuple[AcceleratorProblem, ...]

    def usable(self) -> bool:
        """Every library probed so far sees a GPU."""
        return bool(self.packages) and not self.problems and all(p.devices > 0 for p in self.packages)


def diagnose(
    evidence: GpuEvidence, packages: list[PackageCuda], machine: str, required: bool = False
) -> list[AcceleratorProblem]:
    """Problems that keep a GPU idle; empty when there is none (unless ``required``) or all is well."""
    if not required and not evidence.present and all(p.devices == 0 for p in packages):
        return []
    problems = []
    for package in packages:
        if package.devices > 0:
            continue
        label = f"{package.name} {package.version}"
        if not package.built_with_cuda:
            problems.append(AcceleratorProblem(package.name, package.version, *_cpu_build(package, machine)))
        else:
            why = f": {package.error}" if package.error else ""
            problems.append(
                AcceleratorProblem(
                    package.name,
                    package.version,
                    f"{label} is a CUDA build but sees no GPU{why}",
                    f"give the container the GPU (docker run --gpus all, as run.sh does) and use an NVIDIA "
                    f"driver that supports CUDA {_CUDA_RUNTIME} (580 or newer)",
                )
            )
    return problems


def _cpu_build(package: PackageCuda, machine: str) -> tuple[str, str]:
    label = f"{package.name} {package.version}"
    arm = machine in ("aarch64", "arm64")
    if package.name == "ctranslate2":
        where = ": the aarch64 wheels on PyPI are CPU-only" if arm else ""
        return (
            f"{label} was built without CUDA{where}",
            "use the torch engine on the GPU (ENGINE=auto or torch), or compile CTranslate2 with CUDA: the "
            "image's --target service-ctranslate2-cuda, or scripts/build_ctranslate2.sh and then "
            "CTRANSLATE2_WHEEL=<wheel> scripts/bootstrap.sh",
        )
    where = f": PyPI's aarch64 torch wheels before {_TORCH_CUDA_SINCE} are CPU-only" if arm else ""
    return (
        f"{label} was built without CUDA{where}",
        f"install the locked torch (a CUDA {_CUDA_RUNTIME} build from {_TORCH_CUDA_SINCE} on, on both "
        "x86-64 and aarch64): scripts/bootstrap.sh does",
    )


def check_accelerator(device_setting: str, engine_setting: str = "auto") -> AcceleratorCheck:
    """Probe and diagnose the libraries the GPU path uses.

    With the torch engine (ENGINE auto or torch) that is torch alone: CTranslate2 then only
    serves the CPU, and its CPU-only arm64 wheel is no problem. With ENGINE=ctranslate2 it is
    both, cheaply: CTranslate2 answers in milliseconds, so Whisper's weights can start loading
    while torch is still being imported; torch is probed here only where CTranslate2 sees no GPU
    that should be there (for the message); otherwise ``with_torch`` adds it later, from a
    loading thread (DEVICE=cuda waits for that answer before serving)."""
    if device_setting == "cpu":
        return AcceleratorCheck(GpuEvidence(), (), ())
    evidence = probe_gpu_evidence()
    if engine_setting != "ctranslate2":
        if device_setting == "auto" and not evidence.present:
            return AcceleratorCheck(evidence, (), ())  # no GPU here: no reason to import torch for it
        return _diagnosed(evidence, (probe_torch(),), device_setting)
    ctranslate2 = probe_ctranslate2()
    check = _diagnosed(evidence, (ctranslate2,), device_setting)
    if ctranslate2.devices == 0 and evidence.present:
        check = with_torch(check, device_setting)
    return check


def with_torch(check: AcceleratorCheck, device_setting: str) -> AcceleratorCheck:
    """The same check with torch probed too (imports torch and initialises CUDA)."""
    if any(p.name == "torch" for p in check.packages) or device_setting == "cpu":
        return check
    return _diagnosed(check.evidence, (*check.packages, probe_torch()), device_setting)


def _diagnosed(evidence: GpuEvidence, packages: tuple[PackageCuda, ...], device_setting: str) -> AcceleratorCheck:
    problems = diagnose(evidence, list(packages), machine(), required=device_setting == "cuda")
    return AcceleratorCheck(evidence, packages, tuple(problems))


def choose_device(device_setting: str, check: AcceleratorCheck) -> str:
    """``cpu``/``cuda`` from DEVICE. ``auto`` falls back to the CPU (the check's problems make
    ``/health`` degraded); ``cuda`` with problems raises instead of running somewhere else."""
    if device_setting == "cpu":
        return "cpu"
    if device_setting == "cuda":
        if check.problems:
            raise AcceleratorUnavailable(
                "DEVICE=cuda, but the GPU cannot be used: " + " | ".join(p.message() for p in check.problems)
            )
        return "cuda"
    return "cuda" if check.usable() else "cpu"


def probe_gpu_evidence(dev: Path = Path("/dev")) -> GpuEvidence:
    nodes = tuple(sorted(glob.glob(str(dev / "nvidia[0-9]*"))))
    return GpuEvidence(nodes, _driver_library(), shutil.which("nvidia-smi"))


def _driver_library() -> str | None:
    name = ctypes.util.find_library("cuda")
    for candidate in (name, "libcuda.so.1"):
        if not candidate:
            continue
        try:
            ctypes.CDLL(candidate)
        except OSError:
            continue
        return candidate
    return None


def probe_ctranslate2() -> PackageCuda:
    import ctranslate2

    try:
        devices = ctranslate2.get_cuda_device_count()
        error = None
    except RuntimeError as exc:
        devices, error = 0, str(exc)
    return PackageCuda("ctranslate2", ctranslate2.__version__, _ctranslate2_has_cuda(), devices, error)


def _ctranslate2_has_cuda() -> bool:
    """A CUDA build of libctranslate2 names cuBLAS (linked, or dlopen'ed by name); a CPU build
    never does. The library is the one this process loaded: inside the wheel (PyPI's) or in
    a prefix of its own (the image's source build)."""
    for path in _loaded_libraries("libctranslate2"):
        with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if data.find(b"cublas") >= 0:
                return True
    return False


def _loaded_libraries(prefix: str) -> list[str]:
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if prefix in line}
    return sorted(path for path in paths if Path(path).name.startswith(prefix))


def probe_torch() -> PackageCuda:
    import torch

    if torch.version.cuda is None:
        return PackageCuda("torch", torch.__version__, False, 0)
    try:
        torch.cuda.init()
        return PackageCuda("torch", torch.__version__, True, torch.cuda.device_count())
    except (RuntimeError, AssertionError) as exc:  # torch raises AssertionError with no driver at all
        return PackageCuda("torch", torch.__version__, True, 0, str(exc).strip() or type(exc).__name__)


def image_gpu_libraries_built(*, compiled_ctranslate2: bool) -> str | None:
    """At image build (no GPU there): why the image could not use a GPU, or None."""
    torch = probe_torch()
    if not torch.built_with_cuda:
        return f"torch {torch.version} in the image is a CPU-only build"
    if compiled_ctranslate2:
        ctranslate2 = probe_ctranslate2()
        if not ctranslate2.built_with_cuda:
            return f"the compiled ctranslate2 {ctranslate2.version} in the image is a CPU-only build"
    return None


def machine() -> str:
    return platform.machine().lower()
