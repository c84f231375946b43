"""pyannote's pretrained pipelines with the offline diarizer's frame-level steps.

A pretrained pipeline (``DIARIZER=pyannote``, or ``auto`` with a token or a cached copy) is
pyannote's own ``SpeakerDiarization``: its networks and its clustering (VBx for community-1)
stay pyannote's. Its per-chunk and per-frame Python loops — the speaker count, the reconstruction
and the turns, the last two built twice (the diarization and the exclusive one) — are replaced on
the loaded instance by ``frames.py``'s whole-array steps, the ones the offline diarizer runs. Same
results: tests/e2e/test_pretrained_steps.py compares both on real speech and on the pretrained
pipelines' shapes.

A pipeline whose class overrides any of these steps (a config.yaml may name any class) keeps its own.
"""

from __future__ import annotations

from typing import Any

from pyannote.core import Annotation, SlidingWindow, SlidingWindowFeature

from app.engine.speakers import frames

_STEPS = ("speaker_count", "reconstruct", "to_diarization", "to_annotation")


def share_whole_array_steps(pipeline: Any) -> bool:
    """Give ``pipeline`` (a loaded pyannote pipeline) the whole-array steps; whether it took them."""
    from pyannote.audio.pipelines import SpeakerDiarization

    if not isinstance(pipeline, SpeakerDiarization):
        return False
    if any(getattr(type(pipeline), step) is not getattr(SpeakerDiarization, step) for step in _STEPS):
        return False
    default_speaker_count = pipeline.speaker_count

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
    steps = {"speaker_count": speaker_count, "reconstruct": reconstruct, "to_annotation": to_annotation}
    for name, step in steps.items():
        setattr(pipeline, name, step)
    return True
