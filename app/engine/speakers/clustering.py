"""Clustering of chunk-level speaker embeddings that also finds how many speakers there are.

pyannote's agglomerative clustering stops at a fixed distance threshold. That works for
embeddings trained with a margin between speakers; resemblyzer's GE2E embeddings of two
people are often closer than one person's embeddings across two channels, so any single
threshold fails on some file. This clustering decides the count from the file itself:

1. **One speaker or more.** The segmentation model separates up to three local speakers per
   5 s chunk. If it never hears two of them in the same chunk, the file is a monologue.
   (Embedding distances are no help here: one voice's chunks spread as widely as two voices'.)
2. **How many.** Embeddings are centred on the file's mean (GE2E vectors share a large
   common component) and partitioned with spherical k-means for every allowed count; the
   count whose partition has the best *decorrelated* silhouette wins. Decorrelated: a chunk
   is only compared with chunks that do not overlap it in time, because pyannote slides
   its 5 s window by 0.5 s and neighbouring chunks are near copies of each other, which
   would make any partition look cohesive.

An exact ``num_clusters`` skips both steps; ``min_clusters``/``max_clusters`` bound step 2.
"""

from __future__ import annotations

import math

import numpy as np
from pyannote.audio.pipelines.clustering import BaseClustering
from pyannote.core import SlidingWindowFeature

MAX_AUTOMATIC_SPEAKERS = 10  # upper bound when the request gives none
MIN_SHARED_CHUNKS = 2  # chunks with two active local speakers needed to rule out a monologue
SCORING_SAMPLE = 1500  # embeddings scored per count (silhouette is quadratic in this)
KMEANS_RESTARTS = 4
KMEANS_MAX_ITERATIONS = 300  # scikit-learn's defaults
KMEANS_TOLERANCE = 1e-4  # of the data's mean variance


def normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


class DecorrelatedSilhouette:
    """Mean cosine silhouette of a partition, comparing each embedding only with chunks ≥ ``gap`` steps away.

    What does not depend on the partition (the distances, which pairs may be compared) is
    computed once per file: the count search scores one partition per allowed count.
    """

    def __init__(self, embeddings: np.ndarray, chunks: np.ndarray, gap: int) -> None:
        self.far = (np.abs(chunks[:, None] - chunks[None, :]) >= gap).astype(float)
        self.far_distance = (1.0 - embeddings @ embeddings.T) * self.far

    def __call__(self, labels: np.ndarray) -> float:
        members = np.eye(int(labels.max()) + 1, dtype=float)[labels]  # (n, k) one-hot
        sums = self.far_distance @ members  # (n, k) summed distances to each cluster's far members
        counts = self.far @ members
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums / counts
        rows = np.arange(len(labels))
        own = mean[rows, labels]
        mean[rows, labels] = np.inf
        nearest = mean.min(axis=1)
        valid = np.isfinite(own) & np.isfinite(nearest)
        if not valid.any():
            return -1.0
        scores = (nearest[valid] - own[valid]) / np.maximum(np.maximum(own[valid], nearest[valid]), 1e-12)
        return float(scores.mean())


def spherical_kmeans(embeddings: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means labels of unit vectors: the best of ``KMEANS_RESTARTS`` runs (lowest inertia).

    scikit-learn's ``KMeans`` (greedy k-means++, then Lloyd) computed in numpy, every restart
    at once: the count search runs one k-means per allowed count, and scikit-learn's checks
    and thread-pool set-up on each call cost more than the arithmetic (0.13 of the 0.15 s that
    a minute of speech spent clustering on the H100 host). Four restarts, not ten: the accuracy
    harness scores the same.
    """
    points = np.asarray(embeddings, dtype=np.float64)
    rng = np.random.default_rng(seed)
    squared_norms = (points**2).sum(axis=1)
    centroids = _kmeans_plus_plus(points, squared_norms, k, KMEANS_RESTARTS, rng)  # (restarts, k, dim)
    tolerance = KMEANS_TOLERANCE * points.var(axis=0).mean()
    labels = np.full((KMEANS_RESTARTS, len(points)), -1)
    for _ in range(KMEANS_MAX_ITERATIONS):
        distances = _squared_distances(points, squared_norms, centroids)  # (restarts, n, k)
        new_labels = distances.argmin(axis=2)
        members = np.eye(k)[new_labels]  # (restarts, n, k) one-hot
        sizes = members.sum(axis=1)  # (restarts, k)
        sums = members.transpose(0, 2, 1) @ points  # (restarts, k, dim)
        updated = np.where(sizes[..., None] > 0, sums / np.maximum(sizes, 1)[..., None], centroids)
        _relocate_empty(updated, sizes, distances, new_labels, points)
        shift = ((updated - centroids) ** 2).sum(axis=(1, 2))
        converged = (new_labels == labels).all() or (shift <= tolerance).all()
        centroids, labels = updated, new_labels
        if converged:
            break
    distances = _squared_distances(points, squared_norms, centroids)
    labels = distances.argmin(axis=2)
    inertia = np.take_along_axis(distances, labels[..., None], axis=2).sum(axis=(1, 2))
    return labels[int(inertia.argmin())]


def _squared_distances(points: np.ndarray, squared_norms: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances of every point to every centre: (n, k) for (k, dim) centres,
    (restarts, n, k) for (restarts, k, dim)."""
    cross = points @ np.swapaxes(centres, -1, -2)
    return np.maximum(squared_norms[:, None] - 2 * cross + (centres**2).sum(axis=-1)[..., None, :], 0.0)


def _kmeans_plus_plus(
    points: np.ndarray, squared_norms: np.ndarray, k: int, restarts: int, rng: np.random.Generator
) -> np.ndarray:
    """Greedy k-means++ seeds, as scikit-learn draws them: 2 + ln k candidates per seed, the best kept."""
    n = len(points)
    trials = 2 + int(math.log(k))
    seeds = np.empty((restarts, k, points.shape[1]))
    for r in range(restarts):
        first = int(rng.integers(n))
        seeds[r, 0] = points[first]
        closest = _squared_distances(points, squared_norms, points[[first]])[:, 0]
        for c in range(1, k):
            total = closest.sum()
            if total <= 0:  # every point already sits on a seed (duplicates): any will do
                candidates = rng.integers(n, size=trials)
            else:
                candidates = np.minimum(np.searchsorted(np.cumsum(closest), rng.random(trials) * total), n - 1)
            to_candidates = _squared_distances(points, squared_norms, points[candidates]).T  # (trials, n)
            options = np.minimum(closest[None, :], to_candidates)
            best = int(options.sum(axis=1).argmin())
            seeds[r, c] = points[candidates[best]]
            closest = options[best]
    return seeds


def _relocate_empty(
    centroids: np.ndarray, sizes: np.ndarray, distances: np.ndarray, labels: np.ndarray, points: np.ndarray
) -> None:
    """An empty cluster moves to the point farthest from its own centroid (as scikit-learn's do)."""
    for r, c in zip(*np.nonzero(sizes == 0), strict=True):
        own = distances[r, np.arange(len(points)), labels[r]]
        farthest = int(own.argmax())
        centroids[r, c] = points[farthest]
        distances[r, farthest, labels[r, farthest]] = -1.0  # the next empty cluster takes another point


def nearest_centroid(embeddings: np.ndarray, sample: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Extend a partition of ``embeddings[sample]`` to every embedding (k-means' assignment step)."""
    centroids = np.stack([embeddings[sample][labels == k].mean(axis=0) for k in range(int(labels.max()) + 1)])
    return _squared_distances(embeddings, (embeddings**2).sum(axis=1), centroids).argmin(axis=1)


class SpeakerCountClustering(BaseClustering):
    """Drop-in for pyannote's clustering step (same call signature and outputs)."""

    expects_num_clusters: bool = False

    def __call__(  # type: ignore[override]
        self,
        embeddings: np.ndarray,
        segmentations: SlidingWindowFeature | None = None,
        num_clusters: int | None = None,
        min_clusters: int | None = None,
        max_clusters: int | None = None,
        **kwargs: object,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert segmentations is not None
        train, chunk_idx, _ = self.filter_embeddings(embeddings, segmentations=segmentations)
        num_chunks, local_speakers, dimension = embeddings.shape
        if len(train) < 2:  # nobody embeddable, or a clip shorter than two chunks: one speaker at most
            return self.one_speaker(num_chunks, local_speakers, train, dimension)
        num_clusters, min_clusters, max_clusters = self.set_num_clusters(
            len(train), num_clusters=num_clusters, min_clusters=min_clusters, max_clusters=max_clusters
        )
        if max_clusters < 2:
            return self.one_speaker(num_chunks, local_speakers, train, dimension)
        unit = normalise(train)
        mean = unit.mean(axis=0)
        centred = normalise(unit - mean)
        if num_clusters is None:
            labels = self.automatic_partition(centred, chunk_idx, segmentations, min_clusters, max_clusters)
        elif num_clusters < 2:
            labels = np.zeros(len(centred), dtype=int)
        else:
            labels = spherical_kmeans(centred, num_clusters)
        labels = np.unique(labels, return_inverse=True)[1]  # k-means can leave a cluster empty on duplicates
        centroids = normalise(np.stack([centred[labels == k].mean(axis=0) for k in range(int(labels.max()) + 1)]))
        # Every (chunk, local speaker), not only the ones clustered, goes to its most similar centroid in the
        # same centred space; rows without an embedding (NaN) score 0 everywhere instead of NaN. Constrained:
        # two local speakers of one chunk never get the same label.
        everyone = normalise(np.nan_to_num(normalise(embeddings) - mean))
        soft_clusters = 1.0 + everyone @ centroids.T  # pyannote's convention: 2 - cosine distance
        return self.constrained_argmax(soft_clusters), soft_clusters, centroids

    @staticmethod
    def one_speaker(
        num_chunks: int, local_speakers: int, train: np.ndarray, dimension: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        centroid = normalise(train).mean(axis=0, keepdims=True) if len(train) else np.zeros((1, dimension))
        return np.zeros((num_chunks, local_speakers), dtype=np.int8), np.ones((num_chunks, local_speakers, 1)), centroid

    def automatic_partition(
        self,
        centred: np.ndarray,
        chunk_idx: np.ndarray,
        segmentations: SlidingWindowFeature,
        min_clusters: int,
        max_clusters: int,
    ) -> np.ndarray:
        """Labels for ``centred`` with the speaker count chosen as the module docstring says."""
        one_speaker = np.zeros(len(centred), dtype=int)
        shared_chunks = int((np.bincount(chunk_idx) >= 2).sum())
        if min_clusters <= 1 and shared_chunks < MIN_SHARED_CHUNKS:
            return one_speaker
        low = max(2, min_clusters)
        high = min(max_clusters, MAX_AUTOMATIC_SPEAKERS, len(centred) - 1)
        if high <= low:
            count = max(1, min(low, len(centred)))
            return one_speaker if count < 2 else spherical_kmeans(centred, count)
        window = segmentations.sliding_window
        gap = math.ceil(window.duration / window.step)  # chunks this far apart share no audio
        sample = np.linspace(0, len(centred) - 1, min(len(centred), SCORING_SAMPLE)).astype(int)
        partitions = {k: spherical_kmeans(centred[sample], k) for k in range(low, high + 1)}
        silhouette = DecorrelatedSilhouette(centred[sample], chunk_idx[sample], gap)
        scores = {k: silhouette(labels) for k, labels in partitions.items()}
        best = max(scores, key=lambda k: scores[k])
        # Scored on every embedding (the usual case): the winning partition is the answer as it is.
        # Otherwise (long files) the others join the nearest of its clusters.
        if len(sample) == len(centred):
            return partitions[best]
        return nearest_centroid(centred, sample, partitions[best])
