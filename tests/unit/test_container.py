"""Dockerfile.gpu and run.sh, checked without a Docker engine (none exists on CI)."""

from __future__ import annotations

import json
import os
import re
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


def test_base_image_is_a_cuda_12_build_argument():
    [arg] = [a for a in _all("ARG") if a.startswith("BASE_IMAGE=")]
    assert re.match(r"BASE_IMAGE=nvidia/cuda:12\.\d+(\.\d+)?-cudnn-runtime-", arg)
    assert _all("FROM") == ["${BASE_IMAGE}"]


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
