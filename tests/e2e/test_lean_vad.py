"""WhisperX's VAD run without pyannote.audio (app/engine/pyannet.py) against pyannote.audio's own
``VoiceActivityDetection`` on the same checkpoint: the same scores to the bit, the same windows."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from app.engine.pyannet import SpeechScores
from app.engine.vad import PyannoteVad, SpeechParams, merge_spans, speech_regions
from app.runtime.package_files import package_file
from app.serving.warmup import sample_speech
from tests.support.server import REPO

CHECKPOINT = package_file("whisperx", "assets/pytorch_model.bin", ships="WhisperX's VAD model")


@pytest.fixture(scope="module")
def reference():
    """pyannote.audio's pipeline, as WhisperX builds it."""
    from whisperx.vads import Pyannote

    return Pyannote(torch.device("cpu"), token=None, vad_onset=0.5, vad_offset=0.363, chunk_size=30)


def _clips() -> dict[str, np.ndarray]:
    call = sample_speech()
    noise = np.random.default_rng(0).standard_normal(16000 * 12).astype(np.float32) * 0.05
    return {
        "call": call,
        "call, 75.3 s": np.tile(call, 3)[: int(16000 * 75.3)],
        "exactly one window": call[: 16000 * 5],
        "a window and a bit": call[: 16000 * 5 + 700],
        "shorter than a window": call[16000 * 7 : 16000 * 9],
        "a quarter second": call[16000 * 8 : 16000 * 8 + 4000],
        "noise": noise,
    }


@pytest.mark.parametrize("name", list(_clips()))
def test_scores_and_windows_match_pyannote(reference, name):
    audio = _clips()[name]
    scores = SpeechScores(CHECKPOINT, torch.device("cpu"))
    ours = scores(torch.from_numpy(audio))
    theirs = reference.vad_pipeline({"waveform": torch.from_numpy(audio)[None], "sample_rate": 16000})
    assert ours.shape == theirs.data[:, 0].shape
    np.testing.assert_array_equal(ours, theirs.data[:, 0])
    for onset, offset, chunk in [(0.5, 0.363, 30.0), (0.3, 0.2, 10.0), (0.7, None, 5.0), (0.5, 0.0, 2.0)]:
        expected = [
            (float(c["start"]), float(c["end"]))
            for c in reference.merge_chunks(theirs, chunk, onset=onset, offset=offset)
        ]
        regions = speech_regions(ours, scores.frame_middle, onset=onset, offset=offset, max_duration=chunk)
        assert [(c.start, c.end) for c in merge_spans(regions, chunk)] == expected, (onset, offset, chunk)


def test_the_service_vad_gives_whisperx_windows(reference):
    audio = np.tile(sample_speech(), 2)
    vad = PyannoteVad("cpu")
    theirs = reference.vad_pipeline({"waveform": torch.from_numpy(audio)[None], "sample_rate": 16000})
    expected = [
        (float(c["start"]), float(c["end"])) for c in reference.merge_chunks(theirs, 30, onset=0.5, offset=0.363)
    ]
    assert [(c.start, c.end) for c in vad(audio)] == expected
    assert [(c.start, c.end) for c in vad(audio, SpeechParams(onset=0.6, offset=0.4, chunk_size=8))] == [
        (float(c["start"]), float(c["end"])) for c in reference.merge_chunks(theirs, 8, onset=0.6, offset=0.4)
    ]


def test_loading_and_running_it_imports_neither_pyannote_nor_lightning():
    script = """
        import sys
        import numpy as np
        from app.engine.vad import load_speech_detector
        from app.serving.warmup import sample_speech
        vad = load_speech_detector("pyannote", "cpu")
        assert vad(sample_speech()), "no speech found in the call"
        heavy = ("pyannote.audio", "lightning", "torchmetrics")  # the bare "pyannote" namespace is nothing
        loaded = sorted(m for m in sys.modules if m.startswith(heavy))
        assert not loaded, loaded
        print("ok")
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
