"""DEVICE=cuda at start-up: models start loading on CTranslate2's answer, serving waits for torch's."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.runtime.accelerator import (
    AcceleratorCheck,
    AcceleratorProblem,
    AcceleratorUnavailable,
    GpuEvidence,
    PackageCuda,
)
from app.serving import loader as registry_module
from app.serving.loader import ModelLoader

EVIDENCE = GpuEvidence(device_nodes=("/dev/nvidia0",))
CTRANSLATE2 = PackageCuda("ctranslate2", "4.8.5", built_with_cuda=True, devices=1)
TORCH_CPU_BUILD = AcceleratorProblem("torch", "2.10.0+cpu", "torch is a CPU-only build", "install a CUDA build")


@pytest.fixture
def gpu_machine(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """ENGINE=ctranslate2, whose quick check asks CTranslate2 first: it sees a GPU; torch's answer
    is whatever the test puts in ``state["torch"]``.

    The load records that it began, then probes torch the way the loading threads do.
    """
    state: dict[str, object] = {"torch": (), "events": []}
    events: list[str] = state["events"]  # type: ignore[assignment]
    monkeypatch.setattr(registry_module, "check_accelerator", lambda *_: AcceleratorCheck(EVIDENCE, (CTRANSLATE2,), ()))

    def with_torch(check: AcceleratorCheck, _: str) -> AcceleratorCheck:
        events.append("torch probed")
        return AcceleratorCheck(check.evidence, check.packages, state["torch"])  # type: ignore[arg-type]

    monkeypatch.setattr(registry_module, "with_torch", with_torch)
    monkeypatch.setattr(registry_module, "describe_gpu", lambda: None)

    def load(self: ModelLoader) -> None:
        events.append(f"loading began on {threading.current_thread().name}")
        self.state.device = "cuda"
        self._describe_gpu()

    monkeypatch.setattr(ModelLoader, "load", load)
    return state


def test_models_load_while_torch_is_probed_and_a_usable_gpu_serves(gpu_machine, tmp_path):
    app = create_app(
        Settings(device="cuda", engine="ctranslate2", model_cache_dir=tmp_path, jobs_dir=tmp_path / "jobs")
    )
    with TestClient(app) as client:
        assert client.get("/health/live").status_code == 200
    assert gpu_machine["events"] == ["loading began on model-loader", "torch probed"]


def test_a_gpu_torch_cannot_use_stops_the_start_after_loading_began(gpu_machine, tmp_path):
    gpu_machine["torch"] = (TORCH_CPU_BUILD,)
    app = create_app(
        Settings(device="cuda", engine="ctranslate2", model_cache_dir=tmp_path, jobs_dir=tmp_path / "jobs")
    )
    with pytest.raises(AcceleratorUnavailable, match="torch is a CPU-only build"), TestClient(app):
        pass
    assert gpu_machine["events"] == ["loading began on model-loader", "torch probed"]
