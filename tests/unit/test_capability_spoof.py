"""The Blackwell capability spoof, with the native capability faked (no GPU here)."""

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
from capability_spoof import decide, install  # noqa: E402

TORCH_CU128_ARCHS = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]


@pytest.mark.parametrize(
    ("native", "mode", "spoofed"),
    [
        ((12, 1), "auto", True),  # GB10: newer than everything torch was built for
        ((12, 0), "auto", False),  # in the list
        ((9, 0), "auto", False),
        ((8, 9), "auto", False),  # not listed, but older: runs from sm_86 SASS / PTX
        ((12, 1), "off", False),
        ((8, 0), "on", True),
    ],
)
def test_rule(native, mode, spoofed):
    made = decide(mode, native, TORCH_CU128_ARCHS, (9, 0))
    assert made.spoof is spoofed
    assert made.reported == ((9, 0) if spoofed else native)
    assert made.native == native


def _fake_torch(native=(12, 1), archs=TORCH_CU128_ARCHS):
    properties = SimpleNamespace(major=native[0], minor=native[1], name="NVIDIA GB10", total_memory=128 << 30)
    cuda = SimpleNamespace(
        get_device_capability=lambda device=None: native,
        get_device_properties=lambda device=None: properties,
        get_arch_list=lambda: archs,
        current_device=lambda: 0,
    )
    return SimpleNamespace(cuda=cuda)


def test_install_reports_9_0_everywhere_the_libraries_look(caplog):
    torch = _fake_torch()
    with caplog.at_level(logging.INFO, logger="patches.capability_spoof"):
        spoof = install(torch, mode="auto")
        assert torch.cuda.get_device_capability() == (9, 0)
        assert torch.cuda.get_device_capability(0) == (9, 0)
        assert torch.cuda.get_device_capability("cuda:0") == (9, 0)
        props = torch.cuda.get_device_properties(0)
        assert (props.major, props.minor) == (9, 0)
        assert props.name == "NVIDIA GB10" and props.total_memory == 128 << 30
    assert spoof is not None and spoof.decision().native == (12, 1)
    assert len([r for r in caplog.records if "native capability" in r.message]) == 1, "logs once"


def test_install_is_idempotent():
    torch = _fake_torch()
    first = install(torch, mode="auto")
    patched = torch.cuda.get_device_capability
    assert install(torch, mode="auto") is first
    assert torch.cuda.get_device_capability is patched


def test_a_supported_gpu_is_left_alone():
    torch = _fake_torch(native=(9, 0))
    install(torch, mode="auto")
    assert torch.cuda.get_device_capability() == (9, 0)
    assert torch.cuda.get_device_properties().major == 9


def test_off_installs_nothing():
    torch = _fake_torch()
    original = torch.cuda.get_device_capability
    assert install(torch, mode="off") is None
    assert torch.cuda.get_device_capability is original


def test_target_is_configurable():
    torch = _fake_torch()
    install(torch, mode="on", target="8.6")
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
