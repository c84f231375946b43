"""pyannote's pretrained pipelines with the offline diarizer's frame-level steps.

A pretrained pipeline (``DIARIZER=pyannote``, or ``auto`` with a token or a cached copy) is
pyannote's own ``SpeakerDiarization``: its networks and its clustering (VBx for community-1)
stay pyannote's. Its per-chunk and per-frame Python loops — the chunks cropped one by one for
the embeddings (``chunk_embeddings.py``), the speaker count, the reconstruction and the turns, the
last two built twice (the diarization and the exclusive one) — are replaced on the loaded
instance by the whole-array steps the offline diarizer runs. Same results:
tests/e2e/test_pretrained_steps.py compares both on real speech and on the pretrained pipelines'
shapes.

A pipeline whose class overrides any of these steps (a config.yaml may name any class) keeps its own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pyannote.core import Annotation, SlidingWindow, SlidingWindowFeature

from app.engine.speakers import chunk_embeddings, frames

_STEPS = ("get_embeddings", "speaker_count", "reconstruct", "to_diarization", "to_annotation")


def share_whole_array_steps(pipeline: Any) -> bool:
    """Give ``pipeline`` (a loaded pyannote pipeline) the whole-array steps; whether it took them."""
    from pyannote.audio.pipelines import SpeakerDiarization

    if not isinstance(pipeline, SpeakerDiarization):
        return False
    if any(getattr(type(pipeline), step) is not getattr(SpeakerDiarization, step) for step in _STEPS):
        return False
    default_speaker_count, default_get_embeddings = pipeline.speaker_count, pipeline.get_embeddings

    def get_embeddings(
        file: Any, binary_segmentations: SlidingWindowFeature, exclude_overlap: bool = False, hook: Any = None
    ) -> np.ndarray:
        if pipeline.training:  # tuning hyperparameters: pyannote's cache of embeddings
            return default_get_embeddings(file, binary_segmentations, exclude_overlap=exclude_overlap, hook=hook)
        encoder = pipeline._embedding
        min_clean_frames = None
        if exclude_overlap:  # as pyannote counts it: the frames holding the encoder's shortest input
            num_frames = binary_segmentations.data.shape[1]
            seconds = binary_segmentations.sliding_window.duration
            min_clean_frames = math.ceil(num_frames * encoder.min_num_samples / (seconds * encoder.sample_rate))
        return chunk_embeddings.embed_chunks(
            encoder,
            file,
            binary_segmentations,
            pipeline.embedding_batch_size,
            hook,
            skip_silent=False,
            min_clean_frames=min_clean_frames,
        )

    def speaker_count(
        binarized: SlidingWindowFeature, frame: SlidingWindow, warm_up: tuple[float, float] = (0.1, 0.1)
    ) -> SlidingWindowFeature:
        if tuple(warm_up) != (0.0, 0.0):  # a trimmed count: not what frames.py covers
            return default_speaker_count(binarized, frame, warm_up=warm_up)
        return frames.speaker_count(binarized, frame)

    def reconstruct(
        segmentations: SlidingWindowFeature, hard_clusters: Any, count: SlidingWindowFeature
    ) -> SlidingWindowFeature:
        return frames.top_speakers(frames.clustered_segmentations(segmentations, hard_clusters), count)

    def to_annotation(
        discrete: SlidingWindowFeature, min_duration_on: float = 0.0, min_duration_off: float = 0.0
    ) -> Annotation:
        return frames.active_regions(discrete, min_duration_on=min_duration_on, min_duration_off=min_duration_off)

    # Instance attributes come before the class's methods: only this pipeline changes.
    steps = {
        "get_embeddings": get_embeddings,
        "speaker_count": speaker_count,
        "reconstruct": reconstruct,
        "to_annotation": to_annotation,
    }
    for name, step in steps.items():
        setattr(pipeline, name, step)
    return True
