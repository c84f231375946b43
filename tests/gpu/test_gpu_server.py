"""The real server on a CUDA device (skipped without one; run on the lent GPU machine).

GPU_TEST_WHISPER_MODEL names the model (default `bundled-tiny.en`); on the test machine it is
the int8 copy of tiny.en carried there (bench/gpu/setup_device.sh).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.scoring import read_stm_text, word_error_rate
from tests.support.server import RunningServer, running_server

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def gpu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("gpu")
    env = {
        "DEVICE": "cuda",
        "WHISPER_MODEL": os.environ.get("GPU_TEST_WHISPER_MODEL", "bundled-tiny.en"),
        "MODEL_CACHE_DIR": str(root / "models"),
        "CUDA_CACHE_PATH": str(root / "cuda-cache"),
        "HF_HUB_OFFLINE": "1",
        "HF_TOKEN": "",
    }
    with running_server(env, root / "server.log", timeout_s=900, every_stage=True) as server:
        yield server


def test_health_reports_the_gpu(gpu_server):
    health = gpu_server.health
    assert health["device"] == "cuda" and health["cuda_available"] is True
    assert health["gpu"] and health["compute_capability"].startswith("SM_")
    assert health["compute_type"] == "float16"
    assert health["warmup"]["asr_s"] > 0
    # Kernels compiled from PTX (a CTranslate2 without this GPU's machine code, torch's NVRTC)
    # land here; there may be none.
    assert health["jit_cache"]["environment"]["CUDA_CACHE_DISABLE"] != "1"
    accelerator = health["accelerator"]
    assert accelerator["gpu_present"] and accelerator["problems"] == []
    # Whisper runs with the torch engine on a GPU (ENGINE=auto): torch is the GPU path's library.
    assert health["engine"] == "torch"
    assert {lib["name"]: lib["devices"] > 0 for lib in accelerator["libraries"]} == {"torch": True}
    capability = health["capability"]
    assert capability["native"] == health["compute_capability"] and capability["spoofed"] is False
    assert "runs on it; NVRTC compiles for it" in capability["reason"]


def test_sample_on_the_gpu(gpu_server, sample_wav, sample_stm):
    with gpu_server.client() as client, sample_wav.open("rb") as f:
        reply = client.post("/transcribe", files={"file": ("sample.wav", f)}, data={"language": "en"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert word_error_rate(read_stm_text(sample_stm), body["text"]) <= 0.30
    words = body["word_segments"]
    assert words and all(0 <= w["start"] <= w["end"] <= 30.0 for w in words)
