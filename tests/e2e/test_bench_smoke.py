"""The throughput harness runs end to end on the CPU (bundled tiny.en, small sizes, no targets)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_throughput_harness_smoke_run():
    result = subprocess.run(
        [sys.executable, "-m", "bench.throughput", "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for section in ("## Direct WhisperX vs service", "## Concurrency", "## Service stages", "## Memory over"):
        assert section in result.stdout
