"""The speaker-count choice on synthetic embeddings with a known structure."""

from __future__ import annotations

import numpy as np
from pyannote.core import SlidingWindow, SlidingWindowFeature

from app.services.speaker_clustering import (
    SpeakerCountClustering,
    decorrelated_silhouette,
    nearest_centroid,
    normalise,
)

CHUNKS, FRAMES, LOCAL = 60, 50, 3


def segmentations(active: np.ndarray) -> SlidingWindowFeature:
    """(chunks, local speakers) booleans → a binarised segmentation, 5 s chunks every 0.5 s."""
    data = np.repeat(active[:, None, :], FRAMES, axis=1).astype(float)
    if active.sum(1).max() > 1:  # give simultaneous speakers clean frames of their own, as in real turns
        half = FRAMES // 2
        data[:, :half, 1] = 0
        data[:, half:, 0] = 0
    return SlidingWindowFeature(data, SlidingWindow(start=0.0, duration=5.0, step=0.5))


def embeddings_for(voices: np.ndarray, who: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """(chunks, local, 256): each active local speaker gets its voice plus noise; others are NaN."""
    out = np.full((CHUNKS, LOCAL, 256), np.nan)
    for c in range(CHUNKS):
        for s in range(LOCAL):
            if who[c, s] >= 0:
                out[c, s] = voices[who[c, s]] + noise * rng.standard_normal(256)
    return out


def conversation(num_speakers: int, seed: int = 0, noise: float = 0.3):
    rng = np.random.default_rng(seed)
    common = rng.random(256) * 3  # GE2E-like: a large shared component
    voices = common + rng.random((num_speakers, 256))
    who = -np.ones((CHUNKS, LOCAL), dtype=int)
    for c in range(CHUNKS):
        turn = (c // 6) % num_speakers
        who[c, 0] = turn
        if c % 6 == 5 and num_speakers > 1:  # turn changes: the next speaker overlaps this chunk
            who[c, 1] = (turn + 1) % num_speakers
    return embeddings_for(voices, who, rng, noise), segmentations(who >= 0), who


def found(num_speakers: int, **hints: int | None) -> int:
    embeddings, segs, _ = conversation(num_speakers)
    hard, _, _ = SpeakerCountClustering()(embeddings, segmentations=segs, **hints)
    return len(set(hard[hard >= 0].tolist()))


def test_count_is_found_for_two_to_four_speakers():
    assert [found(n) for n in (2, 3, 4)] == [2, 3, 4]


def test_a_monologue_is_one_speaker():
    assert found(1) == 1


def test_exact_count_and_bounds_are_honoured():
    assert found(3, num_clusters=2) == 2
    assert found(2, min_clusters=3, max_clusters=3) == 3
    assert found(4, max_clusters=2) == 2


def test_decorrelated_silhouette_ignores_overlapping_chunks():
    # Two near-identical neighbours and two far-apart copies of a second voice: only chunks at least
    # `gap` apart are compared, so the pair of neighbours says nothing about cohesion.
    vectors = normalise(np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]]))
    labels = np.array([0, 0, 1, 1])
    far_apart = decorrelated_silhouette(vectors, labels, np.array([0, 20, 40, 60]), gap=10)
    neighbours = decorrelated_silhouette(vectors, labels, np.array([0, 1, 40, 41]), gap=10)
    assert far_apart > 0.8
    assert neighbours == -1.0  # nothing left to compare within a cluster


def test_a_sampled_partition_extends_to_every_embedding():
    rng = np.random.default_rng(1)
    centres = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    truth = rng.integers(0, 3, 300)
    points = centres[truth] + 0.05 * rng.standard_normal((300, 2))
    sample = np.arange(0, 300, 3)
    labels = nearest_centroid(points, sample, truth[sample])
    assert (labels == truth).all()
