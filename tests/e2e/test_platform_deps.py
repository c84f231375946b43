"""The dependency check for linux/amd64 and linux/arm64 passes on the project's lock, and
fails where a platform would get a GPU stack without CUDA (it asks the registry: network)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/check_platform_deps.py", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_image_gets_cuda_on_both_platforms():
    result = _check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("torch 2.11.0: CUDA build") == 2
    amd64, arm64 = result.stdout.split("linux/arm64")
    # Whisper runs on the GPU with torch, so arm64's CPU-only CTranslate2 is only the CPU engine.
    assert "ok    ctranslate2 4.8.5: the registry's wheel, CPU-only: the CPU engine" in arm64
    assert "ok    ctranslate2 4.8.5: the registry's wheel, a CUDA build: the CPU engine" in amd64
    assert result.stdout.strip().endswith("platform dependencies: ok")


def test_whisperx_own_torch_pin_fails_on_arm64(tmp_path):
    """torch 2.8 (what whisperx declares) with the rest of the lock: arm64 gets a CPU-only torch."""
    torch_family = re.compile(r"^(torch|torchaudio|torchvision|torchcodec|triton|nvidia-|cuda-)", re.MULTILINE)
    lock = (REPO / "constraints.txt").read_text().splitlines()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("\n".join(line for line in lock if not torch_family.match(line)) + "\n")
    overrides = tmp_path / "overrides.txt"
    overrides.write_text("torch==2.8.0\ntorchaudio==2.8.0\ntorchvision==0.23.0\n")
    result = _check("--constraints", str(constraints), "--overrides", str(overrides))
    assert result.returncode == 1
    arm64 = result.stdout.split("linux/arm64")[1]
    assert "FAIL  torch 2.8.0" in arm64 and "not a usable CUDA build" in arm64
    assert "FAIL  torch" not in result.stdout.split("linux/arm64")[0]  # amd64's 2.8.0 wheel is CUDA


def test_an_image_compiling_ctranslate2_by_default_compiles_the_locked_version(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    # The compiled target made the default: a last stage built from it.
    dockerfile.write_text((REPO / "Dockerfile.gpu").read_text() + "\nFROM service-ctranslate2-cuda AS default\n")
    result = _check("--dockerfile", str(dockerfile))
    assert result.returncode == 0, result.stdout
    assert result.stdout.count("ctranslate2 4.8.5: compiled from source with CUDA in the image") == 2
    drifted = tmp_path / "Drifted"
    drifted.write_text(
        dockerfile.read_text().replace("ARG PTX_ARCH=121", "ARG PTX_ARCH=121\nENV CTRANSLATE2_VERSION=4.7.1")
    )
    assert "overrides CTRANSLATE2_VERSION" in _check("--dockerfile", str(drifted)).stderr
