"""Resolve the image's Python dependencies for linux/amd64 and linux/arm64 from the registry,
without installing anything, and fail if a platform would get a GPU stack that cannot use the
GPU: a torch wheel without CUDA (torch runs Whisper on the GPU: ENGINE=auto), a CPU-only
CTranslate2 where the image would compile CUDA into it (--target service-ctranslate2-cuda), or a package with
no wheel for the platform (the runtime image has no compiler).

    .venv/bin/python scripts/check_platform_deps.py [--constraints F] [--overrides F] [--dockerfile F]

Resolution is uv's, with the image's lock and overrides, for the image's Python (3.12) and
glibc (Ubuntu 24.04: manylinux_2_39). Wheels are inspected through range requests: their
file list, and the one library that tells a CUDA build from a CPU one.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from remote_wheel import RemoteWheel, linux_tags, wheel_url

REPO = Path(__file__).resolve().parents[1]
PYTHON = (3, 12)
PLATFORMS = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
GLIBC = "manylinux_2_39"


@dataclass
class Report:
    platform: str
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class ResolutionFailed(RuntimeError):
    pass


def resolve(arch: str, constraints: Path, overrides: Path) -> dict[str, str]:
    command = [
        str(REPO / ".venv/bin/uv"),
        "pip",
        "compile",
        "pyproject.toml",
        "-c",
        str(constraints),
        "--override",
        str(overrides),
        "--python-platform",
        f"{arch}-{GLIBC}",
        "--python-version",
        f"{PYTHON[0]}.{PYTHON[1]}",
        "--no-build",
        "--no-header",
        "--no-annotate",
        "--quiet",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise ResolutionFailed(" ".join(result.stderr.split())[-600:])
    return dict(re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", result.stdout, flags=re.MULTILINE))


def image_builds_ctranslate2(dockerfile_path: Path) -> str | None:
    """The version Dockerfile.gpu's default target (its last stage) compiles from source, or None if
    it installs PyPI's wheel (compiling is then an opt-in, --target service-ctranslate2-cuda, for
    ENGINE=ctranslate2 on a GPU)."""
    dockerfile = dockerfile_path.read_text()
    # build_ctranslate2.sh builds the version the lock names unless told otherwise.
    if re.search(r"CTRANSLATE2_VERSION=", dockerfile):
        raise SystemExit("Dockerfile.gpu overrides CTRANSLATE2_VERSION: the lock and the image would disagree")
    if not _default_target_copies_from(dockerfile, "ctranslate2-cuda"):
        return None
    m = re.search(r"^ctranslate2==(\S+)", (REPO / "constraints.txt").read_text(), flags=re.MULTILINE)
    return m[1] if m else None


def _default_target_copies_from(dockerfile: str, source: str) -> bool:
    """Whether the last stage, or a stage it is built FROM, copies files from stage ``source``."""
    stages: dict[str, tuple[str, str]] = {}  # name -> (its base, its instructions)
    last = ""
    for block in re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]:
        header, _, body = block.partition("\n")
        base, _, name = header.strip().partition(" AS ")
        last = name.strip() or f"<stage {len(stages)}>"
        stages[last] = (base.strip(), body)
    while last in stages:
        base, body = stages.pop(last)
        if f"COPY --from={source}" in body:
            return True
        last = base
    return False


def check_platform(platform: str, arch: str, constraints: Path, overrides: Path, dockerfile: Path) -> Report:
    report = Report(platform)
    try:
        pins = resolve(arch, constraints, overrides)
    except ResolutionFailed as exc:
        report.failures.append(f"the dependencies do not resolve: {exc}")
        return report
    tags = linux_tags(arch, PYTHON)
    with ThreadPoolExecutor(max_workers=4) as pool:
        urls = dict(zip(pins, pool.map(lambda item: _find(item, tags), pins.items()), strict=True))
    missing = sorted(f"{name}=={pins[name]}" for name, url in urls.items() if url is None)
    if missing:
        report.failures.append(f"no wheel for {arch} / cp312: {', '.join(missing)}")
    report.lines.append(f"{len(pins)} packages resolved, {len(pins) - len(missing)} with a wheel for this platform")

    torch_url = urls.get("torch")
    if torch_url is not None:
        wheel = RemoteWheel(torch_url[1])
        cuda_libs = [m for m in wheel.members if re.fullmatch(r"torch/lib/lib(torch_cuda|c10_cuda)\.so", m)]
        # The CUDA libraries the wheel loads come as packages it requires (cuBLAS, cuDNN, NVRTC...).
        needed = _cuda_requirements(wheel, arch)
        absent = sorted(name for name in needed if name not in pins)
        if len(cuda_libs) == 2 and needed and not absent:
            listed = ", ".join(f"{name} {pins[name]}" for name in sorted(needed))
            report.lines.append(f"torch {pins['torch']}: CUDA build ({', '.join(cuda_libs)}); with {listed}")
        else:
            report.failures.append(
                f"torch {pins['torch']} ({torch_url[0]}) is not a usable CUDA build: CUDA libraries in the "
                f"wheel: {cuda_libs or 'none'}; CUDA packages it requires: {sorted(needed) or 'none'}"
                + (f", not resolved: {absent}" if absent else "")
            )

    built = image_builds_ctranslate2(dockerfile)
    ct2_url = urls.get("ctranslate2")
    registry_cuda = _ctranslate2_wheel_has_cuda(ct2_url[1]) if ct2_url else None
    registry = {True: "a CUDA build", False: "CPU-only", None: "absent"}[registry_cuda]
    if built is not None:
        if built != pins.get("ctranslate2"):
            report.failures.append(
                f"the image builds ctranslate2 {built} but the lock resolves {pins.get('ctranslate2')}"
            )
        report.lines.append(
            f"ctranslate2 {pins.get('ctranslate2')}: compiled from source with CUDA in the image "
            f"(scripts/build_ctranslate2.sh); the registry's wheel here is {registry}"
        )
    elif registry_cuda is None:
        report.failures.append(f"ctranslate2 {pins.get('ctranslate2')}: no wheel in the registry")
    else:
        report.lines.append(
            f"ctranslate2 {pins.get('ctranslate2')}: the registry's wheel, {registry}: the CPU engine "
            "(Whisper runs on the GPU with torch; --target service-ctranslate2-cuda compiles it for ENGINE=ctranslate2)"
        )
    return report


def _cuda_requirements(wheel: RemoteWheel, arch: str) -> set[str]:
    metadata = next(m for m in wheel.members if m.endswith(".dist-info/METADATA"))
    environment = {"platform_machine": arch, "sys_platform": "linux", "platform_system": "Linux"}
    environment["python_version"] = f"{PYTHON[0]}.{PYTHON[1]}"
    names = set()
    for line in wheel.read(metadata).decode().splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.split(":", 1)[1].strip())
        if requirement.marker and not requirement.marker.evaluate(environment):
            continue
        if requirement.name.startswith(("nvidia-", "cuda-")):
            names.add(canonicalize_name(requirement.name))
    return names


def _find(item: tuple[str, str], tags: list) -> tuple[str, str] | None:
    try:
        return wheel_url(item[0], item[1], tags)
    except LookupError:
        return None


def _ctranslate2_wheel_has_cuda(url: str) -> bool:
    wheel = RemoteWheel(url)
    libraries = [m for m in wheel.members if re.search(r"/libctranslate2[^/]*\.so", m)]
    return any(b"cublas" in wheel.read(name) for name in libraries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--constraints", type=Path, default=REPO / "constraints.txt")
    parser.add_argument("--overrides", type=Path, default=REPO / "overrides.txt")
    parser.add_argument("--dockerfile", type=Path, default=REPO / "Dockerfile.gpu")
    args = parser.parse_args()
    failed = False
    for platform, arch in PLATFORMS.items():
        report = check_platform(platform, arch, args.constraints.resolve(), args.overrides.resolve(), args.dockerfile)
        print(f"{platform} (Python {PYTHON[0]}.{PYTHON[1]}, {GLIBC}):")
        for line in report.lines:
            print(f"  ok    {line}")
        for failure in report.failures:
            print(f"  FAIL  {failure}")
        failed |= bool(report.failures)
    print("platform dependencies: " + ("FAILED" if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
