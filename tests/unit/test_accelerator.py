"""No silent CPU: a present GPU that torch or CTranslate2 cannot use is named, with the fix.

Each case is simulated (there is no GPU here) by handing ``diagnose`` what the probes would
find; the probes themselves run for real on this machine's CPU stack.
"""

from __future__ import annotations

import pytest

from app.runtime import accelerator
from app.runtime.accelerator import (
    AcceleratorCheck,
    AcceleratorUnavailable,
    GpuEvidence,
    PackageCuda,
    check_accelerator,
    choose_device,
    diagnose,
    probe_ctranslate2,
    probe_gpu_evidence,
    probe_torch,
)

GB10 = GpuEvidence(("/dev/nvidia0",), "libcuda.so.1", "/usr/bin/nvidia-smi")
NO_GPU = GpuEvidence()
CT2_ARM_WHEEL = PackageCuda("ctranslate2", "4.8.5", built_with_cuda=False, devices=0)
CT2_CUDA = PackageCuda("ctranslate2", "4.8.5", built_with_cuda=True, devices=1)
TORCH_2_8_ARM = PackageCuda("torch", "2.8.0", built_with_cuda=False, devices=0)
TORCH_CUDA = PackageCuda("torch", "2.11.0+cu130", built_with_cuda=True, devices=1)


def test_cpu_only_ctranslate2_on_an_arm_gpu_box():
    [problem] = diagnose(GB10, [CT2_ARM_WHEEL, TORCH_CUDA], "aarch64")
    assert problem.package == "ctranslate2" and problem.version == "4.8.5"
    assert problem.reason == "ctranslate2 4.8.5 was built without CUDA: the aarch64 wheels on PyPI are CPU-only"
    assert "ENGINE=auto or torch" in problem.fix and "--target service-ctranslate2-cuda" in problem.fix
    assert "CTRANSLATE2_WHEEL" in problem.fix


def test_cpu_only_torch_on_an_arm_gpu_box():
    problems = diagnose(GB10, [CT2_ARM_WHEEL, TORCH_2_8_ARM], "aarch64")
    assert [p.package for p in problems] == ["ctranslate2", "torch"]
    assert (
        problems[1].reason == "torch 2.8.0 was built without CUDA: PyPI's aarch64 torch wheels before 2.11 are CPU-only"
    )
    assert "scripts/bootstrap.sh" in problems[1].fix


def test_cuda_build_that_sees_no_gpu_names_the_driver():
    torch_without_driver = PackageCuda("torch", "2.11.0+cu130", True, 0, "The NVIDIA driver on your system is too old")
    [problem] = diagnose(GB10, [CT2_CUDA, torch_without_driver], "x86_64")
    assert problem.reason == (
        "torch 2.11.0+cu130 is a CUDA build but sees no GPU: The NVIDIA driver on your system is too old"
    )
    assert "--gpus all" in problem.fix and "580" in problem.fix


def test_no_gpu_no_problem_unless_cuda_is_required():
    assert diagnose(NO_GPU, [PackageCuda("ctranslate2", "4.8.5", True, 0)], "x86_64") == []
    [problem] = diagnose(NO_GPU, [PackageCuda("ctranslate2", "4.8.5", True, 0)], "x86_64", required=True)
    assert "sees no GPU" in problem.reason


def test_x86_wording_does_not_blame_arm_wheels():
    [problem] = diagnose(GB10, [PackageCuda("ctranslate2", "4.8.5", False, 0)], "x86_64")
    assert problem.reason == "ctranslate2 4.8.5 was built without CUDA"


def _check(*packages: PackageCuda, evidence: GpuEvidence = GB10) -> AcceleratorCheck:
    return AcceleratorCheck(evidence, packages, tuple(diagnose(evidence, list(packages), "aarch64")))


def test_auto_falls_back_to_the_cpu_and_cuda_refuses():
    broken = _check(CT2_ARM_WHEEL, TORCH_CUDA)
    assert choose_device("auto", broken) == "cpu"
    with pytest.raises(AcceleratorUnavailable, match=r"ctranslate2 4\.8\.5 was built without CUDA"):
        choose_device("cuda", broken)
    assert choose_device("cpu", broken) == "cpu"


def test_auto_uses_a_working_gpu():
    assert choose_device("auto", _check(CT2_CUDA, TORCH_CUDA)) == "cuda"
    assert choose_device("auto", _check(CT2_CUDA)) == "cuda"  # torch is probed beside the other loads
    assert choose_device("auto", _check(PackageCuda("ctranslate2", "4.8.5", True, 0), evidence=NO_GPU)) == "cpu"


def test_device_nodes_are_evidence(tmp_path):
    (tmp_path / "nvidia0").touch()
    (tmp_path / "nvidiactl").touch()
    evidence = probe_gpu_evidence(tmp_path)
    assert evidence.device_nodes == (str(tmp_path / "nvidia0"),)
    assert evidence.present


def test_probes_on_this_cpu_machine():
    """The locked x86-64 wheels are CUDA builds; with no driver they see no GPU, and say why."""
    ctranslate2 = probe_ctranslate2()
    assert ctranslate2.built_with_cuda and ctranslate2.devices == 0
    torch = probe_torch()
    assert torch.built_with_cuda and torch.devices == 0 and torch.error
    assert not probe_gpu_evidence().present
    check = check_accelerator("auto")
    assert check.problems == () and choose_device("auto", check) == "cpu"
    with pytest.raises(AcceleratorUnavailable, match="DEVICE=cuda, but the GPU cannot be used"):
        choose_device("cuda", check_accelerator("cuda"))


def test_the_gpu_path_is_torch_unless_the_engine_is_ctranslate2(monkeypatch):
    """A CPU-only CTranslate2 (PyPI's arm64 wheel) keeps no GPU idle when torch runs Whisper."""
    monkeypatch.setattr(accelerator, "probe_gpu_evidence", lambda: GB10)
    monkeypatch.setattr(accelerator, "probe_ctranslate2", lambda: CT2_ARM_WHEEL)
    monkeypatch.setattr(accelerator, "probe_torch", lambda: TORCH_CUDA)
    for engine in ("auto", "torch"):
        check = check_accelerator("auto", engine)
        assert [p.name for p in check.packages] == ["torch"]
        assert check.problems == () and choose_device("auto", check) == "cuda"
    check = check_accelerator("auto", "ctranslate2")
    assert [p.package for p in check.problems] == ["ctranslate2"] and choose_device("auto", check) == "cpu"


def test_without_gpu_signs_auto_imports_no_torch(monkeypatch):
    monkeypatch.setattr(accelerator, "probe_gpu_evidence", lambda: NO_GPU)
    monkeypatch.setattr(accelerator, "probe_torch", lambda: pytest.fail("torch probed with no GPU in sight"))
    check = check_accelerator("auto", "auto")
    assert check.packages == () and choose_device("auto", check) == "cpu"
