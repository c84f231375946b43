"""pyannote's ``SpeakerDiarization`` pipeline assembled from weights that ship inside wheels.

- Segmentation: the PyanNet checkpoint in the whisperx wheel (multi-label, 3 local speakers,
  5 s windows), the one WhisperX uses for VAD.
- Embedding: resemblyzer's GE2E encoder (``speaker_embedding.GE2EEmbedding``).
- Clustering: ``speaker_clustering.SpeakerCountClustering``, which also finds the count.

Nothing is downloaded. pyannote's default VBx clustering needs a PLDA from the hub, and
``SpeakerDiarization`` loads one even when another clustering is chosen (``plda=None`` is a
TypeError in its getter), so this pipeline hands it ``NoPLDA``: a PLDA that loads nothing
and refuses to be used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyannote.audio import Model
from pyannote.audio.core.plda import PLDA
from pyannote.audio.pipelines import SpeakerDiarization

from app.services.package_files import package_file
from app.services.speaker_clustering import SpeakerCountClustering
from app.services.speaker_embedding import GE2EEmbedding

NAME = "offline"

# Not tuned on the evaluation files: pyannote's default onset for multi-label segmentation,
# and no gap filling (min_duration_off=0), as in its pretrained pipelines.
HYPERPARAMETERS: dict[str, Any] = {"segmentation": {"threshold": 0.5, "min_duration_off": 0.0}}

# Chunks per segmentation and embedding call. Both models are LSTMs, whose steps run one after
# another: on a GPU, four times fewer calls took a 10-minute file from 4.5 to 3.5 s (H100,
# bench/diarization_speed.py). On the CPU the work is the same either way; smaller calls hold
# less memory.
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
            embedding=GE2EEmbedding(Path(embedding_weights) if embedding_weights else None),
            plda=NoPLDA(),
            clustering="AgglomerativeClustering",  # replaced below; the name only picks a constructor
            segmentation_batch_size=segmentation_batch_size,
            embedding_batch_size=embedding_batch_size,
        )
        self.clustering = SpeakerCountClustering(metric=self._embedding.metric)

    def default_parameters(self) -> dict[str, Any]:
        return HYPERPARAMETERS


def build_offline_pipeline(device: str = "cpu") -> OfflineSpeakerDiarization:
    on_gpu = device.startswith("cuda")
    segmentation_batch, embedding_batch = GPU_BATCH_SIZES if on_gpu else CPU_BATCH_SIZES
    pipeline = OfflineSpeakerDiarization(
        segmentation_batch_size=segmentation_batch, embedding_batch_size=embedding_batch
    )
    pipeline.instantiate(HYPERPARAMETERS)
    return pipeline
