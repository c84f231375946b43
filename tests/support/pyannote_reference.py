"""pyannote's own ``SpeakerDiarization`` with the offline diarizer's models and hyperparameters:
what the offline diarizer (which no longer imports pyannote.audio) is checked against, and a
pipeline class a test's config.yaml can name, as a pretrained pipeline's does."""

from __future__ import annotations

from typing import Any

import torch
from pyannote.audio import Model
from pyannote.audio.core.plda import PLDA
from pyannote.audio.pipelines import SpeakerDiarization

from app.engine.speakers.embedding import EMBEDDING_DIM, SAMPLE_RATE, SpeakerEmbedding
from app.engine.speakers.offline import CPU_BATCH_SIZES, HYPERPARAMETERS, segmentation_checkpoint


class CampplusModel(Model):
    """CAM++ as a pyannote ``Model``, as pyannote's pipelines take an embedding model."""

    def __init__(self) -> None:
        super().__init__(sample_rate=SAMPLE_RATE, num_channels=1)
        self.embedding = SpeakerEmbedding()

    @property
    def dimension(self) -> int:
        return EMBEDDING_DIM

    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        return self.embedding(waveforms, weights=weights)


class NoPLDA(PLDA):
    """Stands in for the hub-only PLDA: ``SpeakerDiarization`` loads one even for agglomerative clustering."""

    def __init__(self) -> None:  # deliberately loads nothing
        self.lda_dimension = 0


class ReferenceDiarization(SpeakerDiarization):
    def __init__(
        self,
        segmentation_batch_size: int = CPU_BATCH_SIZES[0],
        embedding_batch_size: int = CPU_BATCH_SIZES[1],
        **_: Any,
    ) -> None:
        super().__init__(
            segmentation=Model.from_pretrained(str(segmentation_checkpoint())),
            embedding=CampplusModel(),
            plda=NoPLDA(),
            clustering="AgglomerativeClustering",
            segmentation_batch_size=segmentation_batch_size,
            embedding_batch_size=embedding_batch_size,
        )

    def default_parameters(self) -> dict[str, Any]:
        return HYPERPARAMETERS


def reference_pipeline() -> ReferenceDiarization:
    pipeline = ReferenceDiarization()
    pipeline.instantiate(HYPERPARAMETERS)
    return pipeline
