"""Which local speakers of which chunks are one voice: pyannote's agglomerative clustering
(``pyannote.audio.pipelines.clustering.AgglomerativeClustering``, centroid linkage of unit
vectors, unconstrained assignment), with numpy and scipy alone.

pyannote's class needs ``pyannote.audio``, whose import brings Lightning, torchmetrics,
transformers and ``torch._dynamo``: seconds of start-up and hundreds of MB for 100 lines of
arithmetic. tests/e2e/test_lean_diarizer.py checks this against pyannote's on real embeddings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import cdist

logger = logging.getLogger(__name__)

MIN_ACTIVE_RATIO = 0.2  # a local speaker heard alone for less of its chunk is not clustered


@dataclass(frozen=True)
class AgglomerativeClustering:
    threshold: float  # a distance between unit vectors: cosine = 1 - threshold² / 2
    min_cluster_size: int  # smaller clusters are merged into the nearest large one

    def __call__(
        self,
        embeddings: np.ndarray,
        binarized: np.ndarray,
        num_clusters: int | None = None,
        min_clusters: int | None = None,
        max_clusters: int | float | None = None,
    ) -> np.ndarray:
        """(chunks, local speakers, dim) embeddings and (chunks, frames, local speakers) 0/1
        activity → (chunks, local speakers) cluster of each, from 0."""
        train, chunk_idx, speaker_idx = _clusterable(embeddings, binarized)
        num_clusters, min_clusters, max_clusters = _bounds(len(train), num_clusters, min_clusters, max_clusters)
        if max_clusters < 2:
            return np.zeros(embeddings.shape[:2], dtype=np.int8)
        clusters = self._cluster(train, min_clusters, max_clusters, num_clusters)  # (normalises train in place)
        return _nearest_centroid(embeddings, embeddings[chunk_idx, speaker_idx], clusters)

    def _cluster(
        self, embeddings: np.ndarray, min_clusters: int, max_clusters: int, num_clusters: int | None
    ) -> np.ndarray:
        count = len(embeddings)
        min_cluster_size = min(self.min_cluster_size, max(1, round(0.1 * count)))
        if count == 1:
            return np.zeros((1,), dtype=np.uint8)
        with np.errstate(divide="ignore", invalid="ignore"):
            embeddings /= np.linalg.norm(embeddings, axis=-1, keepdims=True)
        dendrogram = linkage(embeddings, method="centroid", metric="euclidean")
        clusters = fcluster(dendrogram, self.threshold, criterion="distance") - 1
        labels, sizes = np.unique(clusters, return_counts=True)
        large = labels[sizes >= min_cluster_size]

        if len(large) < min_clusters:
            num_clusters = min_clusters
        elif len(large) > max_clusters:
            num_clusters = max_clusters
        if num_clusters is not None and len(large) != num_clusters:
            clusters, labels, sizes = _cut_for(dendrogram, num_clusters, min_cluster_size, self.threshold)
            large = labels[sizes >= min_cluster_size]

        if len(large) == 0:
            clusters[:] = 0
            return clusters
        small = labels[sizes < min_cluster_size]
        if len(small) == 0:
            return clusters
        # Each small cluster joins the large one whose centroid is nearest to its own.
        large_centroids = np.vstack([np.mean(embeddings[clusters == k], axis=0) for k in large])
        small_centroids = np.vstack([np.mean(embeddings[clusters == k], axis=0) for k in small])
        for small_k, large_k in enumerate(np.argmin(cdist(large_centroids, small_centroids, metric="cosine"), axis=0)):
            clusters[clusters == small[small_k]] = large[large_k]
        _, clusters = np.unique(clusters, return_inverse=True)
        return clusters


def _cut_for(
    dendrogram: np.ndarray, wanted: int, min_cluster_size: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The dendrogram cut, nearest the threshold first, whose number of large clusters is
    ``wanted`` (or the closest to it): its clusters, their labels and their sizes."""
    count = len(dendrogram) + 1
    by_merge = np.copy(dendrogram)
    by_merge[:, 2] = np.arange(count - 1)  # cut after the i-th merge: fcluster at distance i
    best_merge, best_large = count - 1, 1
    for merge in np.argsort(np.abs(dendrogram[:, 2] - threshold)):
        if by_merge[merge, 3] < min_cluster_size:
            continue  # this merge makes no large cluster
        clusters = fcluster(by_merge, merge, criterion="distance") - 1
        labels, sizes = np.unique(clusters, return_counts=True)
        large = int(np.sum(sizes >= min_cluster_size))
        if abs(large - wanted) < abs(best_large - wanted):
            best_merge, best_large = merge, large
        if large == wanted:
            return clusters, labels, sizes
    clusters = fcluster(by_merge, best_merge, criterion="distance") - 1
    labels, sizes = np.unique(clusters, return_counts=True)
    logger.info(
        "Found only %d speakers where %d were asked for (min_cluster_size %d)",
        int(np.sum(sizes >= min_cluster_size)), wanted, min_cluster_size,
    )  # fmt: skip
    return clusters, labels, sizes


def _clusterable(embeddings: np.ndarray, binarized: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The embeddings worth clustering: not NaN, and of a speaker heard alone for at least
    ``MIN_ACTIVE_RATIO`` of its chunk. Returns them with their chunk and local speaker indices."""
    num_frames = binarized.shape[1]
    alone = np.sum(binarized, axis=2, keepdims=True) == 1
    active = np.sum(binarized * alone, axis=1) >= MIN_ACTIVE_RATIO * num_frames
    valid = ~np.any(np.isnan(embeddings), axis=2)
    chunk_idx, speaker_idx = np.where(active * valid)
    return embeddings[chunk_idx, speaker_idx], chunk_idx, speaker_idx


def _bounds(
    count: int, num_clusters: int | None, min_clusters: int | None, max_clusters: int | float | None
) -> tuple[int | None, int, int]:
    """pyannote's ``set_num_clusters``: the hints bounded by how many embeddings there are."""
    min_clusters = num_clusters or min_clusters or 1
    min_clusters = max(1, min(count, min_clusters))
    max_clusters = num_clusters or max_clusters or count
    max_clusters = int(max(1, min(count, max_clusters)))
    if min_clusters > max_clusters:
        raise ValueError(f"min_clusters ({min_clusters}) must not exceed max_clusters ({max_clusters})")
    return (min_clusters if min_clusters == max_clusters else num_clusters), min_clusters, max_clusters


def _nearest_centroid(embeddings: np.ndarray, train: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Every chunk's every local speaker (clustered or not) to the cluster whose mean is nearest."""
    num_chunks, num_speakers, dimension = embeddings.shape
    centroids = np.vstack([np.mean(train[clusters == k], axis=0) for k in range(np.max(clusters) + 1)])
    distances = cdist(embeddings.reshape(-1, dimension), centroids, metric="cosine")
    return np.argmax(2 - distances, axis=1).reshape(num_chunks, num_speakers)
