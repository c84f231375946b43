"""`python -m app prewarm`: load, warm every stage once, report, exit (what run.sh prewarm runs)."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_prewarm_loads_warms_and_exits(tmp_path):
    env = {
        **os.environ,
        "MODEL_CACHE_DIR": str(tmp_path / "models"),
        "CUDA_CACHE_PATH": str(tmp_path / "cuda-cache"),
        "DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("HF_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-m", "app", "prewarm"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["phase"] == "ready"
    assert summary["warmup"]["asr_s"] > 0 and summary["warmup"]["audio_s"] == 4.0
    # Prewarm waits for the diarizer too (it loads after ready when serving) and warms it.
    assert summary["warmup"]["diarization_s"] > 0
    assert summary["startup_s"]["ready"] < summary["startup_s"]["diarization_ready"]
    assert summary["jit_cache"]["path"] == str(tmp_path / "cuda-cache")
    assert "Warmup: total" in result.stderr
    assert (tmp_path / "models" / "bundled" / "whisper-base" / "model.bin").is_file()
