"""The accuracy harness in quick mode: the DER and speaker-count targets turn CI red when missed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.conversations import tools_available
from tests.support.server import REPO


@pytest.mark.skipif(not tools_available(), reason="espeak-ng and sox make the synthetic conversations")
def test_quick_accuracy_harness_meets_its_targets():
    run = subprocess.run(
        [sys.executable, "-m", "bench.accuracy", "--quick", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(run.stdout)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "pyannote sample (auto)" in run.stdout and "synthetic-2spk-seed0" in run.stdout
