"""DEVICE=cuda where no GPU can be used: the real server refuses to start, and says why."""

from __future__ import annotations

import re

import pytest

from tests.support.server import ServerDidNotStart, running_server


def test_device_cuda_without_a_usable_gpu_refuses_to_start(tmp_path):
    env = {"DEVICE": "cuda", "MODEL_CACHE_DIR": str(tmp_path / "models"), "HF_HUB_OFFLINE": "1"}
    with pytest.raises(ServerDidNotStart) as failure, running_server(env, tmp_path / "server.log", timeout_s=180):
        pass
    log = str(failure.value)
    assert "DEVICE=cuda, but the GPU cannot be used" in log
    # ENGINE=auto on a GPU is the torch engine: torch is the library asked.
    assert re.search(r"torch 2\.11\.0\S* is a CUDA build but sees no GPU", log)
    assert "Application startup failed" in log
