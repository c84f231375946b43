"""The benchmark harnesses run end to end on the CPU (bundled tiny.en, small sizes, no targets):
throughput for both engines, one server after the other, capacity, partials on short windows,
continuous batching, and the diarizer's frame-level steps."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _smoke_run(bench: str) -> str:
    """``python -m bench.<bench> --smoke``; what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", "--smoke"], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_throughput_harness_smoke_run():
    stdout = _smoke_run("throughput")
    for section in ("## Concurrency: each client sends a different 15 s file (text only)", "## Service stages"):
        assert stdout.count(section) == 2, section  # once per engine
    assert stdout.count("## Memory over") == 2
    assert "## Direct (WhisperX) vs service, engine ctranslate2" in stdout
    assert "## Direct (the torch engine in this process) vs service, engine torch" in stdout
    assert "| target | goal | ctranslate2 | torch |" in stdout
    assert "| text tokens decoded per window (ASR section) | equal across engines |" in stdout


def test_capacity_harness_smoke_run():
    """The backlog drains through /v1/jobs with every job done once, and the open loop steps up
    until its latency bound: the capacity harness end to end on the CPU (no targets there)."""
    table = _smoke_run("capacity").split("## Capacity:")[1]
    assert "| engine alone |" in table
    assert "| backlog of 4 jobs |" in table and "4/4 done" in table
    assert "| open loop, " in table


def test_partial_window_harness_smoke_run():
    """Partials decoded on a 10 s window and on a full one, scored against the turn's final text."""
    stdout = _smoke_run("partial_window")
    assert "| audio, padded to 10 s |" in stdout and "| full 30 s (today) |" in stdout


def test_continuous_batching_harness_smoke_run():
    """The same files with whole batches and refilled ones: windows joined, and the texts agree."""
    stdout = _smoke_run("continuous_batching")
    assert "| whole batches |" in stdout and "| refilled |" in stdout
    assert "windows whose text differs: 0 of 8" in stdout
    assert '"whole batches": {' in stdout and '"joined": 0' in stdout.split('"refilled"')[0]


def test_speaker_frames_harness_smoke_run():
    """pyannote's frame-level steps and the offline diarizer's, timed on the same segmentation: same turns."""
    stdout = _smoke_run("speaker_frames")
    assert "| 30 |" in stdout and "| yes |" in stdout
