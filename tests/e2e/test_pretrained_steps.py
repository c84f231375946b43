"""pyannote's pretrained pipelines with the whole-array frame steps (pretrained_steps.py) give
what pyannote's own loops give: the diarization and the exclusive one, turn for turn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from pyannote.core import SlidingWindowFeature

from app.engine.speakers.pretrained_steps import share_whole_array_steps
from app.serving.warmup import sample_speech
from tests.support.pyannote_reference import ReferenceDiarization, pretrained_shaped_pipeline, reference_pipeline
from tests.support.server import tiled_sample


def _turns(annotation: Any) -> list[tuple[float, float, str]]:
    return [(round(t.start, 6), round(t.end, 6), str(label)) for t, _, label in annotation.itertracks(yield_label=True)]


def _both(pipeline: Any, audio: np.ndarray, **hints: Any) -> tuple[Any, Any]:
    file = {"waveform": torch.from_numpy(audio[None, :]), "sample_rate": 16000, "uri": "call"}
    own = pipeline(file, **hints)
    assert share_whole_array_steps(pipeline)
    shared = pipeline(file, **hints)
    for step in ("get_embeddings", "speaker_count", "reconstruct", "to_annotation"):
        del pipeline.__dict__[step]  # back to pyannote's own, for the next case
    return own, shared


def _same(own: Any, shared: Any) -> None:
    assert _turns(shared.speaker_diarization) == _turns(own.speaker_diarization)
    assert _turns(shared.exclusive_speaker_diarization) == _turns(own.exclusive_speaker_diarization)
    assert np.array_equal(shared.speaker_embeddings, own.speaker_embeddings, equal_nan=True)


@pytest.mark.parametrize("hints", [{}, {"min_speakers": 3, "max_speakers": 4}])
def test_real_speech_with_the_bundled_models(hints):
    own, shared = _both(reference_pipeline(), sample_speech(), **hints)
    assert len(own.speaker_diarization.labels()) >= 1
    _same(own, shared)


def test_the_pretrained_pipelines_shapes():
    """segmentation-3.0's powerset output (0/1 scores, ties everywhere) and WeSpeaker, random weights."""
    own, shared = _both(pretrained_shaped_pipeline(), tiled_sample(20.0), max_speakers=3)
    assert len(own.speaker_diarization) > 0
    _same(own, shared)


def test_embeddings_with_overlap_left_out_are_pyannotes():
    """Random masks: some speakers have enough frames alone (their overlap is left out), some not."""
    pipeline = pretrained_shaped_pipeline()
    audio = tiled_sample(20.0)
    file = {"waveform": torch.from_numpy(audio[None, :]), "sample_rate": 16000, "uri": "call"}
    segmentations = pipeline.get_segmentations(file)
    rng = np.random.default_rng(3)
    masks = (rng.random(segmentations.data.shape) < [0.2, 0.5, 0.9]).astype(np.float64)
    masks[0, :, 1] = 0.0  # a silent speaker
    masks[1, :, 0] = masks[1, :, 2] = 1.0  # never alone: its whole mask is used
    binary = SlidingWindowFeature(masks, segmentations.sliding_window)
    theirs = pipeline.get_embeddings(file, binary, exclude_overlap=True)
    assert share_whole_array_steps(pipeline)
    ours = pipeline.get_embeddings(file, binary, exclude_overlap=True)
    assert np.array_equal(ours, theirs, equal_nan=True)


def test_a_class_with_steps_of_its_own_keeps_them():
    class OwnCount(ReferenceDiarization):
        @staticmethod
        def speaker_count(*args: Any, **kwargs: Any) -> Any:
            return ReferenceDiarization.speaker_count(*args, **kwargs)

    pipeline = OwnCount()
    assert not share_whole_array_steps(pipeline)
    assert "speaker_count" not in pipeline.__dict__
    assert not share_whole_array_steps(object())
