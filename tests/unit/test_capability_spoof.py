"""The Blackwell capability spoof: the rule against real arch lists, and the patch with the
native capability faked (no GPU here)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "patches"))

import capability_spoof  # noqa: E402
from capability_spoof import decide, install, nvrtc_supported_archs  # noqa: E402

# Read from the wheels on PyPI (torch._C._cuda_getArchFlags in libtorch_python.so, and
# nvrtcGetSupportedArchs of the nvidia-cuda-nvrtc wheel torch depends on), 2026-11-23.
TORCH_2_8_CU128 = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # x86-64
TORCH_2_11_CU130 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]  # x86-64
TORCH_2_11_CU130_AARCH64 = ["sm_80", "sm_90", "sm_100", "sm_110", "sm_120"]
NVRTC_12_8 = [50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90, 100, 101, 120]
NVRTC_13_0 = [75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121]

CU128 = (TORCH_2_8_CU128, NVRTC_12_8)
CU130 = (TORCH_2_11_CU130, NVRTC_13_0)
CU130_ARM = (TORCH_2_11_CU130_AARCH64, NVRTC_13_0)


@pytest.mark.parametrize(
    ("stack", "native", "spoofed", "reported"),
    [
        (CU128, (8, 6), False, (8, 6)),
        (CU128, (9, 0), False, (9, 0)),
        (CU128, (10, 0), False, (10, 0)),
        (CU128, (12, 0), False, (12, 0)),
        # GB10 on CUDA 12.8: sm_120 code runs, but NVRTC 12.8 cannot compile for sm_121 (the
        # original "invalid value for --gpu-architecture"). 12.0 is what both can serve.
        (CU128, (12, 1), True, (12, 0)),
        (CU128, (13, 0), True, (12, 0)),
        (CU130, (8, 6), False, (8, 6)),
        (CU130, (9, 0), False, (9, 0)),
        (CU130, (10, 0), False, (10, 0)),
        (CU130, (12, 0), False, (12, 0)),
        # GB10 on torch 2.11: sm_120 machine code runs on sm_121 and NVRTC 13.0 knows sm_121.
        (CU130, (12, 1), False, (12, 1)),
        (CU130, (13, 0), True, (12, 0)),  # a future major: no code runs, NVRTC cannot compile
        (CU130_ARM, (12, 1), False, (12, 1)),  # the DGX Spark image
        (CU130_ARM, (11, 0), False, (11, 0)),  # Jetson Thor
        (CU130_ARM, (8, 6), False, (8, 6)),  # sm_80 code runs on 8.6
        (CU130_ARM, (7, 5), True, (9, 0)),  # nothing older than sm_80 in the aarch64 build
    ],
)
def test_rule_against_real_torch_and_nvrtc(stack, native, spoofed, reported):
    archs, nvrtc = stack
    made = decide("auto", native, archs, nvrtc)
    assert (made.spoof, made.reported, made.native) == (spoofed, reported, native), made.reason


def test_reasons_name_what_fails():
    made = decide("auto", (12, 1), TORCH_2_8_CU128, NVRTC_12_8)
    assert made.reason == "NVRTC cannot compile for sm_121 (it knows up to sm_120)"
    made = decide("auto", (13, 0), TORCH_2_11_CU130, NVRTC_13_0)
    assert "NVRTC cannot compile for sm_130" in made.reason
    assert "torch has no machine code or PTX that runs on sm_130" in made.reason
    made = decide("auto", (12, 1), TORCH_2_11_CU130, NVRTC_13_0)
    assert made.reason == "sm_121: torch's sm_120 runs on it; NVRTC compiles for it"


def test_ptx_and_arch_specific_code():
    # PTX runs on anything at or above it; sm_90a only on exactly 9.0.
    assert not decide("auto", (12, 1), ["sm_90a", "compute_90"], [90, 121]).spoof
    assert decide("auto", (10, 0), ["sm_90a"], [90, 100]).spoof
    assert not decide("auto", (9, 0), ["sm_90a"], [90]).spoof


def test_unknown_nvrtc_decides_from_torch_alone():
    made = decide("auto", (12, 1), TORCH_2_8_CU128, None)
    assert not made.spoof and "NVRTC not found" in made.reason


def test_modes_and_explicit_target():
    assert decide("off", (12, 1), TORCH_2_8_CU128, NVRTC_12_8).spoof is False
    assert decide("on", (8, 0), TORCH_2_11_CU130, NVRTC_13_0).reported == (8, 0)
    assert decide("auto", (12, 1), TORCH_2_8_CU128, NVRTC_12_8, target=(9, 0)).reported == (9, 0)


def test_nvrtc_of_this_process_is_asked():
    """torch 2.11 preloads NVRTC 13.0 from the nvidia-cuda-nvrtc wheel: the query finds it."""
    import torch

    archs = nvrtc_supported_archs(torch.version.cuda)
    assert archs is not None and 121 in archs and 120 in archs


def _fake_torch(native=(12, 1), archs=TORCH_2_8_CU128):
    """torch.cuda as 2.11 has it: get_device_capability reads the module's get_device_properties."""
    properties = SimpleNamespace(major=native[0], minor=native[1], name="NVIDIA GB10", total_memory=128 << 30)
    cuda = SimpleNamespace(get_arch_list=lambda: archs, current_device=lambda: 0)
    cuda.get_device_properties = lambda device=None: properties

    def get_device_capability(device=None):
        prop = cuda.get_device_properties(device)
        return prop.major, prop.minor

    cuda.get_device_capability = get_device_capability
    return SimpleNamespace(cuda=cuda)


def _nvrtc_12_8():
    return NVRTC_12_8


def test_install_reports_the_target_everywhere_the_libraries_look(caplog):
    torch = _fake_torch()
    with caplog.at_level(logging.INFO, logger="patches.capability_spoof"):
        spoof = install(torch, mode="auto", nvrtc_archs=_nvrtc_12_8)
        assert torch.cuda.get_device_capability() == (12, 0)
        assert torch.cuda.get_device_capability(0) == (12, 0)
        assert torch.cuda.get_device_capability("cuda:0") == (12, 0)
        props = torch.cuda.get_device_properties(0)
        assert (props.major, props.minor) == (12, 0)
        assert props.name == "NVIDIA GB10" and props.total_memory == 128 << 30
    assert spoof is not None and spoof.decision().native == (12, 1)
    assert len([r for r in caplog.records if "native capability" in r.message]) == 1, "logs once"


def test_install_is_idempotent():
    torch = _fake_torch()
    first = install(torch, mode="auto", nvrtc_archs=_nvrtc_12_8)
    patched = torch.cuda.get_device_capability
    assert install(torch, mode="auto") is first
    assert torch.cuda.get_device_capability is patched


def test_gb10_on_torch_2_11_is_left_alone():
    torch = _fake_torch(native=(12, 1), archs=TORCH_2_11_CU130_AARCH64)
    install(torch, mode="auto", nvrtc_archs=lambda: NVRTC_13_0)
    assert torch.cuda.get_device_capability() == (12, 1)
    assert torch.cuda.get_device_properties().major == 12


def test_off_installs_nothing():
    torch = _fake_torch()
    original = torch.cuda.get_device_capability
    assert install(torch, mode="off") is None
    assert torch.cuda.get_device_capability is original


def test_target_is_configurable():
    torch = _fake_torch()
    install(torch, mode="on", target="8.6", nvrtc_archs=_nvrtc_12_8)
    assert torch.cuda.get_device_capability() == (8, 6)


def _python(code: str, **env: str) -> str:
    environment = {**os.environ, "PYTHONPATH": str(REPO / "patches"), **env}
    result = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_sitecustomize_does_not_import_torch_at_start_and_patches_it_on_import():
    code = (
        "import sys\n"
        "print('torch' in sys.modules)\n"
        "import torch\n"
        "print(type(torch.cuda.get_device_capability.__self__).__name__)\n"
        "print(type(torch.__spec__.loader).__name__)\n"
    )
    assert _python(code).splitlines() == ["False", "CapabilitySpoof", "SourceFileLoader"]


def test_sitecustomize_respects_off():
    code = "import torch; print(hasattr(torch.cuda, '_capability_spoof_installed'))"
    assert _python(code, CUDA_CAPABILITY_SPOOF="off") == "False"


def test_module_is_importable_without_torch():
    assert "torch" not in capability_spoof.__dict__
