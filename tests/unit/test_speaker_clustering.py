"""The speaker-count choice on synthetic embeddings with a known structure."""

from __future__ import annotations

import numpy as np
from pyannote.core import SlidingWindow, SlidingWindowFeature

from app.engine.speakers.clustering import (
    DecorrelatedSilhouette,
    SpeakerCountClustering,
    nearest_centroid,
    normalise,
    spherical_kmeans,
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
    far_apart = DecorrelatedSilhouette(vectors, np.array([0, 20, 40, 60]), gap=10)(labels)
    neighbours = DecorrelatedSilhouette(vectors, np.array([0, 1, 40, 41]), gap=10)(labels)
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


def inertia(points: np.ndarray, labels: np.ndarray) -> float:
    return float(sum(((points[labels == c] - points[labels == c].mean(0)) ** 2).sum() for c in np.unique(labels)))


def test_kmeans_finds_partitions_as_good_as_scikit_learns():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(3)
    for size, voices in ((150, 2), (150, 4), (600, 3)):
        centres = rng.standard_normal((voices, 64))
        truth = rng.integers(0, voices, size)
        points = normalise(centres[truth] + 1.0 * rng.standard_normal((size, 64)))
        ratios = []
        for k in range(2, 11):
            ours = spherical_kmeans(points, k)
            theirs = KMeans(n_clusters=k, n_init=4, random_state=0).fit(points).labels_
            ratios.append(inertia(points, ours) / inertia(points, theirs))
        # Both keep the best of four random restarts: past the true count, where no partition is
        # much better than another, either may land a little lower. Never far apart, same on average.
        assert max(ratios) < 1.02 and abs(np.mean(ratios) - 1) < 0.005, ratios
        recovered = spherical_kmeans(points, voices)
        # The same partition as the truth, up to the labels' names.
        assert len({(a, b) for a, b in zip(recovered.tolist(), truth.tolist(), strict=True)}) == voices


def test_kmeans_is_deterministic_and_survives_duplicates():
    rng = np.random.default_rng(0)
    points = normalise(rng.standard_normal((40, 16)))
    assert (spherical_kmeans(points, 3) == spherical_kmeans(points, 3)).all()
    same = np.repeat(points[:1], 10, axis=0)
    assert set(spherical_kmeans(same, 3).tolist()) <= {0, 1, 2}  # nothing to split: no error, no NaN
    two_places = np.concatenate([np.repeat(points[:1], 5, axis=0), np.repeat(points[1:2], 5, axis=0)])
    labels = spherical_kmeans(two_places, 4)  # more clusters than distinct points
    assert len(set(labels[:5].tolist())) == 1 and len(set(labels[5:].tolist())) == 1
    assert labels[0] != labels[5]
