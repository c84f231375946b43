"""pyannote's own ``SpeakerDiarization`` with the offline diarizer's models and hyperparameters:
what the offline diarizer (which no longer imports pyannote.audio) is checked against, and a
pipeline class a test's config.yaml can name, as a pretrained pipeline's does; and one in the
shapes of pyannote's pretrained pipeline, with random weights (the hub's are out of reach)."""

from __future__ import annotations

from typing import Any

import torch
from pyannote.audio import Model
from pyannote.audio.core.plda import PLDA
from pyannote.audio.core.task import Problem, Resolution, Specifications
from pyannote.audio.models.embedding import WeSpeakerResNet34
from pyannote.audio.models.segmentation import PyanNet
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


# speaker-diarization-3.1's config.yaml: its pipeline's arguments and hyperparameters.
PRETRAINED_HYPERPARAMETERS: dict[str, Any] = {
    "segmentation": {"min_duration_off": 0.0},
    "clustering": {"method": "centroid", "min_cluster_size": 12, "threshold": 0.7045654963945799},
}


def segmentation_3_0_shaped(seed: int = 0) -> PyanNet:
    """pyannote/segmentation-3.0's network (1.47 M weights: 10 s chunks, a powerset of 3 speakers
    with at most 2 at once), with random weights."""
    torch.manual_seed(seed)
    model = PyanNet(
        sincnet={"stride": 10},
        lstm={"hidden_size": 128, "num_layers": 4, "bidirectional": True, "monolithic": True, "dropout": 0.0},
        linear={"hidden_size": 128, "num_layers": 2},
        sample_rate=SAMPLE_RATE,
        num_channels=1,
    )
    model.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=10.0,
        min_duration=10.0,
        warm_up=(0.0, 0.0),
        classes=["speaker#1", "speaker#2", "speaker#3"],
        powerset_max_classes=2,
        permutation_invariant=True,
    )
    model.build()
    return model.eval()


def pretrained_shaped_pipeline(seed: int = 0, batch_size: int = 32) -> SpeakerDiarization:
    """speaker-diarization-3.1 with random weights: segmentation-3.0's and WeSpeaker ResNet34's
    shapes, agglomerative clustering, overlapped speech left out of the embeddings. (community-1
    differs in its clustering, VBx, whose PLDA weights are hub-only.)"""
    torch.manual_seed(seed)
    pipeline = SpeakerDiarization(
        segmentation=segmentation_3_0_shaped(seed),
        embedding=WeSpeakerResNet34(sample_rate=SAMPLE_RATE, num_channels=1).eval(),
        plda=NoPLDA(),
        clustering="AgglomerativeClustering",
        embedding_exclude_overlap=True,
        segmentation_batch_size=batch_size,
        embedding_batch_size=batch_size,
    )
    pipeline.instantiate(PRETRAINED_HYPERPARAMETERS)
    return pipeline
