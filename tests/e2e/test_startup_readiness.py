"""Start-up on the real server: ready to transcribe before the diarizer is in, requests that want
speakers wait for it, `/health` says which stages still load, and the timeline shows the path."""

import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.support.server import REPO, post_audio, wait_for_every_stage, write_tiled_sample
from tests.support.server_fixtures import server_or_fail


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiled_sample(tmp_path_factory.mktemp("speech") / "call.wav", 12.0)


def test_ready_for_words_first_speakers_when_the_diarizer_is_in(tmp_path: Path, speech: Path):
    env = {"MODEL_CACHE_DIR": str(tmp_path / "models"), "DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "HF_TOKEN": ""}
    with server_or_fail(env, tmp_path / "server.log", timeout_s=600, every_stage=False) as server:
        at_ready = server.health
        # pyannote.audio alone takes seconds to import after ready: the first 200 comes before it.
        assert at_ready["loading"] == ["diarization"]
        stage = at_ready["stages"]["diarization"]
        # DIARIZER=auto tries the pretrained pipeline first; without a token it falls back to the offline one.
        assert stage["loading"] and not stage["loaded"] and stage["model"].startswith("pyannote/")
        assert "diarization" not in at_ready["degraded"], "still loading is not degraded"
        everything = httpx.get(f"{server.url}/health", params={"require": "all"})
        assert everything.status_code == 503 and everything.headers["retry-after"]
        assert everything.json()["status"] == "loading"
        assert httpx.get(f"{server.url}/health", params={"require": "diarization"}).status_code == 503
        assert httpx.get(f"{server.url}/health", params={"require": "asr"}).status_code == 200
        unknown = httpx.get(f"{server.url}/health", params={"require": "speakers"})
        assert unknown.status_code == 422 and "require" in unknown.text

        with server.client() as client:
            # Sent while the diarizer loads: the one that wants speakers waits for it and gets them.
            answers: dict[str, dict] = {}
            wants_speakers = threading.Thread(
                target=lambda: answers.update(speakers=post_audio(client, speech, language="en")[1])
            )
            wants_speakers.start()
            _, words_only = post_audio(client, speech, language="en", diarize="false")
            wants_speakers.join(timeout=300)
        assert words_only["text"] and not words_only["diarization"]["requested"]
        with_speakers = answers["speakers"]
        assert with_speakers["diarization"]["performed"], with_speakers["diarization"]
        assert {segment.get("speaker") for segment in with_speakers["segments"]} - {None}

        wait_for_every_stage(server)
        done = server.health
    assert done["loading"] == [] and done["stages"]["diarization"]["loaded"]
    assert done["stages"]["diarization"]["model"] == "offline"
    startup = done["startup_s"]
    assert 0 < startup["ready"] < startup["diarization_ready"]
    timeline = done["startup_timeline"]
    steps = {span["step"]: span for span in timeline}
    assert steps["before_load"]["start"] == 0.0
    assert all(0.0 <= span["start"] <= span["end"] <= startup["diarization_ready"] + 0.01 for span in timeline)
    assert [span["start"] for span in timeline] == sorted(span["start"] for span in timeline)
    # The path to ready: torch, Whisper, the VAD (without pyannote.audio) and the warmup; the
    # diarizer comes after it, and the offline one never imports pyannote.audio.
    for step in ("import torch", "whisper", "vad", "warmup"):
        assert steps[step]["end"] <= startup["ready"], step
    for step in ("diarizer", "diarizer_warmup"):
        assert steps[step]["start"] >= startup["ready"] - 0.01, step
    assert "import pyannote.audio" not in steps
    assert steps["import torch"]["thread"] != steps["warmup"]["thread"]  # a loading thread, not the loader's own


def test_cold_start_figure_on_this_cpu(capsys: pytest.CaptureFixture[str]):
    """The CPU proxy of the start-up target, printed into the CI log (a figure, not a timed assert)."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.cold_start", "--model", "bundled-base", "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| case | ready s | all in s |" in result.stdout
    assert "| step | thread | start | end | seconds |" in result.stdout
    assert "bare `import torch` here:" in result.stdout
    with capsys.disabled():
        print("\n" + result.stdout.strip().split("\nmodel ", 1)[-1])
