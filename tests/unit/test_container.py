"""Dockerfile.gpu and run.sh, checked without a Docker engine (none exists on CI)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile.gpu").read_text().replace("\\\n", " ")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), " ".join(rest.split())))
    return rows


def _all(keyword: str) -> list[str]:
    return [rest for kw, rest in _instructions() if kw == keyword]


def _env() -> dict[str, str]:
    pairs = {}
    for rest in _all("ENV"):
        pairs.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return pairs


def _args() -> dict[str, str]:
    pairs = (arg.split("=", 1) for arg in _all("ARG") if "=" in arg)
    return {name: value.strip('"') for name, value in pairs}


def test_ctranslate2_is_pypis_wheel_unless_compiling_is_asked_for():
    """The GPU engine is torch: by default CTranslate2 is PyPI's wheel (the CPU engine) and no
    builder stage runs; CTRANSLATE2=source compiles it for CUDA 13 (ENGINE=ctranslate2 on a GPU)."""
    assert _all("FROM") == [
        "${BUILD_IMAGE} AS ctranslate2-source",
        "${RUNTIME_IMAGE} AS ctranslate2-wheel",
        "ctranslate2-${CTRANSLATE2} AS ctranslate2",
        "${RUNTIME_IMAGE}",
    ]
    args = _args()
    assert args["CTRANSLATE2"] == "wheel"
    assert re.fullmatch(r"13\.\d+\.\d+", args["CUDA_VERSION"])
    assert args["BUILD_IMAGE"] == "nvidia/cuda:${CUDA_VERSION}-cudnn-devel-ubuntu24.04"
    assert {"80", "90", "100", "120", "121"} <= set(args["CUDA_ARCHS"].split())
    assert args["PTX_ARCH"] == "121"
    runs = _all("RUN")
    assert any("scripts/build_ctranslate2.sh /wheels" in run for run in runs)
    assert any(
        "CTRANSLATE2_WHEEL=\"$(find /wheels -name 'ctranslate2-*.whl')\" scripts/bootstrap.sh image" in run
        for run in runs
    )
    assert "COPY --from=ctranslate2 /opt/ctranslate2/lib /opt/ctranslate2/lib" in [f"COPY {c}" for c in _all("COPY")]


def _build_options(**env: str) -> list[str]:
    script = REPO / "scripts" / "build_ctranslate2.sh"
    result = subprocess.run(
        [str(script), "--dry-run"], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


def test_ctranslate2_build_options():
    lines = _build_options()
    locked = re.search(r"^ctranslate2==(\S+)", (REPO / "constraints.txt").read_text(), flags=re.MULTILINE)
    assert locked and lines[0] == f"ctranslate2 v{locked[1]}", "the image builds the version the lock pins"
    options = dict(line.split("=", 1) for line in lines[1:])
    assert options["-DWITH_CUDA"] == options["-DWITH_CUDNN"] == options["-DCUDA_DYNAMIC_LOADING"] == "ON"
    # Legacy FindCUDA: one one-digit-major arch in CUDA_ARCH_LIST, the rest as -gencode flags.
    assert options["-DCUDA_ARCH_LIST"] == "8.0"
    gencode = options["-DCUDA_NVCC_FLAGS"].split(";")
    assert "-gencode=arch=compute_121,code=sm_121" in gencode
    assert "-gencode=arch=compute_120,code=sm_120" in gencode
    assert gencode[-1] == "-gencode=arch=compute_121,code=compute_121", "PTX for GPUs newer than the list"


def _nvcc() -> str | None:
    return shutil.which("nvcc") or next((p for p in ("/usr/local/cuda/bin/nvcc",) if Path(p).exists()), None)


@pytest.mark.skipif(_nvcc() is None, reason="needs the CUDA toolkit's nvcc")
def test_nvcc_accepts_the_architectures(tmp_path):
    """The installed CUDA 13 nvcc compiles a kernel for every architecture the image asks for."""
    options = dict(line.split("=", 1) for line in _build_options()[1:])
    kernel = tmp_path / "k.cu"
    kernel.write_text("__global__ void twice(float* x) { x[threadIdx.x] *= 2.f; }\n")
    flags = ["-gencode=arch=compute_80,code=sm_80", *options["-DCUDA_NVCC_FLAGS"].split(";")]
    subprocess.run([_nvcc(), "-c", str(kernel), "-o", str(tmp_path / "k.o"), *flags], check=True, timeout=300)


@pytest.mark.skipif(_nvcc() is None or shutil.which("cmake") is None, reason="needs cmake and the CUDA toolkit")
def test_findcuda_rejects_two_digit_majors_so_they_go_in_nvcc_flags(tmp_path):
    """The trap the build script avoids: CTranslate2's legacy FindCUDA cannot name sm_121."""
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.7)\nproject(probe)\nfind_package(CUDA 11.0 REQUIRED)\n"
        'cuda_select_nvcc_arch_flags(FIRST "8.0")\nmessage(STATUS "8.0 -> ${FIRST}")\n'
        'cuda_select_nvcc_arch_flags(GB10 "12.1")\n'
    )
    env = {**os.environ, "CUDACXX": str(_nvcc()), "PATH": f"{Path(str(_nvcc())).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "build"), "-Wno-dev"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "8.0 -> -gencode;arch=compute_80,code=sm_80" in result.stdout
    assert "Unknown CUDA Architecture Name 12.1" in result.stderr


def test_installs_through_the_ci_script_and_applies_patches():
    runs = " ".join(_all("RUN"))
    assert "scripts/bootstrap.sh image" in runs
    bootstrap = (REPO / "scripts" / "bootstrap.sh").read_text()
    assert re.search(r"torchaudio_complex_abs\.py\"? --check", bootstrap)
    assert "constraints.txt" in bootstrap
    assert _env()["PYTHONPATH"] == "/srv/patches", "sitecustomize must load in every process"


def test_runs_as_a_non_root_user():
    [user] = _all("USER")
    assert user.split(":")[0] not in ("0", "root")


def test_caches_are_volumes_and_jit_cache_is_kept():
    volumes = json.loads(_all("VOLUME")[0])
    assert {"/models", "/cuda-cache"} <= set(volumes)
    env = _env()
    assert env["CUDA_CACHE_PATH"] == "/cuda-cache"
    assert env["CUDA_CACHE_DISABLE"] == "0"
    assert env["CUDA_CACHE_MAXSIZE"] == "2147483648"
    assert env["CUDA_FORCE_PTX_JIT"] == "0"
    assert "CUDA_FORCE_PTX_JIT=1" not in (REPO / "Dockerfile.gpu").read_text()
    assert env["MODEL_CACHE_DIR"] == "/models"


def test_healthcheck_port_and_pid_1():
    [healthcheck] = _all("HEALTHCHECK")
    assert "--start-period=" in healthcheck and "/health" in healthcheck
    assert _all("EXPOSE") == ["8003"]
    entrypoint = json.loads(_all("ENTRYPOINT")[0])  # exec form: no shell in between
    assert entrypoint == ["scripts/entrypoint.sh"]
    script = (REPO / "scripts" / "entrypoint.sh").read_text()
    assert "exec python -m app" in script


def _run_sh(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"} | {"HOME": "/home/u"} | env
    return subprocess.run(["bash", str(REPO / "run.sh"), *args], env=environment, capture_output=True, text=True)


def test_run_sh_starts_with_the_jit_cache_mounted():
    result = _run_sh("--dry-run")
    assert result.returncode == 0, result.stderr
    command = result.stdout.split()
    assert command[:3] == ["docker", "run", "-d"]
    for flag in ("--gpus all", "--ipc=host", "-p 8003:8003"):
        assert flag in result.stdout
    for setting in (
        "CUDA_CACHE_DISABLE=0",
        "CUDA_CACHE_PATH=/cuda-cache",
        "CUDA_CACHE_MAXSIZE=2147483648",
        "CUDA_FORCE_PTX_JIT=0",
    ):
        assert f"-e {setting}" in result.stdout
    assert "/home/u/.local/share/transcription-service/cuda-cache:/cuda-cache" in result.stdout
    assert "/home/u/.local/share/transcription-service/models:/models" in result.stdout
    assert command[-1] == "transcription-service:gpu"


def test_run_sh_gives_docker_a_stop_timeout_past_the_drain():
    from app.config import Settings

    default = Settings.model_fields["shutdown_grace_s"].default
    result = _run_sh("--dry-run")
    assert f"--stop-timeout {int(default) + 10} -e SHUTDOWN_GRACE_S={int(default)}" in result.stdout
    result = _run_sh("--dry-run", SHUTDOWN_GRACE_S="5")
    assert "--stop-timeout 15 -e SHUTDOWN_GRACE_S=5" in result.stdout
    assert _run_sh("--dry-run", SHUTDOWN_GRACE_S="soon").returncode == 2


def test_run_sh_options():
    result = _run_sh("--dry-run", "--port", "9000", "--image", "me/ts:1", "--gpus", "device=1", "--name", "ts1")
    assert "-p 9000:8003" in result.stdout
    assert "--gpus device=1" in result.stdout
    assert "--name ts1" in result.stdout
    assert result.stdout.split()[-1] == "me/ts:1"


def test_run_sh_passes_the_token_by_name_only():
    result = _run_sh("--dry-run", HF_TOKEN="hf_very_secret")
    assert "-e HF_TOKEN " in result.stdout + " "
    assert "hf_very_secret" not in result.stdout + result.stderr


def test_run_sh_prewarm_runs_once_and_exits():
    result = _run_sh("prewarm", "--dry-run")
    command = result.stdout.split()
    assert command[:3] == ["docker", "run", "--rm"]
    assert command[-1] == "prewarm"
    assert "-e CUDA_CACHE_PATH=/cuda-cache" in result.stdout


@pytest.mark.parametrize("args", [("--bogus",), ("launch",), ("--port",), ("--port", "eighty")])
def test_run_sh_refuses_bad_arguments(args):
    result = _run_sh(*args, "--dry-run") if args != ("--port",) else _run_sh(*args)
    assert result.returncode == 2
    assert "run.sh:" in result.stderr
