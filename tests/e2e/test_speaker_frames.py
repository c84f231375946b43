"""The offline diarizer's frame-level steps (app/engine/speakers/frames.py) give what pyannote's
own loops give, step by step, on the real segmentation of the sample call (the whole diarizer
against pyannote's: test_lean_diarizer.py)."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from pyannote.audio.pipelines import SpeakerDiarization
from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin
from pyannote.audio.utils.signal import binarize
from pyannote.core import SlidingWindowFeature

from app.engine.speakers import frames
from app.engine.speakers.offline import HYPERPARAMETERS, OfflineSpeakerDiarization, build_offline_pipeline
from app.serving.warmup import sample_speech


@pytest.fixture(scope="module")
def pipeline() -> OfflineSpeakerDiarization:
    return build_offline_pipeline("cpu")


@pytest.fixture(scope="module")
def segmented(pipeline) -> tuple[SlidingWindowFeature, SlidingWindowFeature]:
    """The sample call's raw and binarized local segmentation (chunks, frames, 3 local speakers)."""
    audio = sample_speech()
    raw = pipeline.get_segmentations({"waveform": torch.from_numpy(audio[None, :]), "sample_rate": 16000})
    return raw, binarize(raw, onset=HYPERPARAMETERS["segmentation"]["threshold"], initial_state=False)


def copy(feature: SlidingWindowFeature) -> SlidingWindowFeature:
    """pyannote's aggregation writes zeros over NaNs in its input: each side gets its own copy."""
    return SlidingWindowFeature(feature.data.copy(), feature.sliding_window)


def window(feature: SlidingWindowFeature) -> tuple[float, float, float]:
    frames_ = feature.sliding_window
    return frames_.start, frames_.duration, frames_.step


def test_hysteresis_is_pyannotes_binarize(segmented):
    raw, binarized = segmented
    np.testing.assert_array_equal(frames.hysteresis(raw, 0.5).data, binarized.data)
    # Scores exactly at the threshold keep the frame before's state; NaN reads as 0.
    edgy = raw.data.copy()
    edgy[::7, 5::11, :] = 0.5
    edgy[0, :3, 0] = 0.5
    edgy[3, 40:45, 1] = np.nan
    edgy_feature = SlidingWindowFeature(edgy, raw.sliding_window)
    for initial in (False, True):
        expected = binarize(edgy_feature, onset=0.5, initial_state=initial).data
        np.testing.assert_array_equal(frames.hysteresis(edgy_feature, 0.5, initial_state=initial).data, expected)


def test_speaker_count_is_pyannotes(pipeline, segmented):
    _, binarized = segmented
    receptive = pipeline.receptive_field
    ours = frames.speaker_count(copy(binarized), receptive)
    theirs = SpeakerDiarizationMixin.speaker_count(copy(binarized), receptive, warm_up=(0.0, 0.0))
    assert window(ours) == window(theirs)
    np.testing.assert_array_equal(ours.data, theirs.data)
    assert ours.data.max() >= 2, "the call has overlapping speech: the count is not trivial"


def test_clusters_to_frames_to_turns_are_pyannotes(pipeline, segmented):
    raw, binarized = segmented
    receptive = pipeline.receptive_field
    count = SpeakerDiarizationMixin.speaker_count(copy(binarized), receptive, warm_up=(0.0, 0.0))
    # Local speakers spread over three clusters, two local speakers of a chunk sometimes in one
    # (pyannote keeps the higher score), the silent ones thrown away (-2) as apply() does.
    hard = np.random.default_rng(0).integers(0, 3, size=binarized.data.shape[::2]).astype(np.int8)
    hard[np.sum(binarized.data, axis=1) == 0] = -2

    reference = types.SimpleNamespace(to_diarization=SpeakerDiarizationMixin.to_diarization)
    theirs = SpeakerDiarization.reconstruct(reference, copy(raw), hard, count)
    ours = frames.top_speakers(frames.clustered_segmentations(copy(raw), hard), count)
    assert window(ours) == window(theirs)
    np.testing.assert_array_equal(ours.data, theirs.data)
    assert set(np.unique(ours.data.sum(axis=1))) >= {0.0, 1.0, 2.0}

    their_turns = SpeakerDiarizationMixin.to_annotation(theirs, min_duration_off=0.0)
    our_turns = frames.active_regions(ours)
    assert list(our_turns.itertracks(yield_label=True)) == list(their_turns.itertracks(yield_label=True))
    assert len(our_turns) > 10
    # min_duration_off fills a speaker's short gaps, as pyannote's does.
    filled = frames.active_regions(ours, min_duration_off=0.5)
    assert filled == SpeakerDiarizationMixin.to_annotation(theirs, min_duration_off=0.5)
