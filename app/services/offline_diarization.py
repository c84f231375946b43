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
        segmentation_batch_size: int = 32,
        embedding_batch_size: int = 64,
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


def build_offline_pipeline() -> OfflineSpeakerDiarization:
    pipeline = OfflineSpeakerDiarization()
    pipeline.instantiate(HYPERPARAMETERS)
    return pipeline
