"""The offline diarizer's speaker encoder: CAM++ with the real weights (fetched by bootstrap.sh),
its batched Kaldi filterbank, the speaker masks, and what it tells apart on the real call."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchaudio.compliance.kaldi import fbank

from app.engine.audio import read_pcm16_wav
from app.engine.speakers.campplus import KaldiFbank, load_campplus
from app.engine.speakers.embedding import SpeakerEmbedding, campplus_weights
from app.serving.warmup import sample_speech_path
from tests.support.scoring import reference_annotation


@pytest.fixture(scope="module")
def model() -> SpeakerEmbedding:
    return SpeakerEmbedding().eval()


@pytest.fixture(scope="module")
def call() -> np.ndarray:
    return read_pcm16_wav(sample_speech_path())


def test_the_batched_filterbank_is_kaldis():
    waves = torch.randn(3, 16000 * 2, generator=torch.Generator().manual_seed(0)) * 0.1
    reference = torch.stack([fbank(wave[None, :], num_mel_bins=80) for wave in waves])
    assert torch.allclose(KaldiFbank()(waves), reference, atol=1e-3)


def test_the_weights_are_the_whole_network():
    """Every tensor of the state dict has its place (load_state_dict is strict) and nothing is left out."""
    model = load_campplus(campplus_weights())
    assert sum(p.numel() for p in model.parameters()) == 6_848_544


@torch.inference_mode()
def test_a_speakers_mask_embeds_only_that_speakers_frames(model, call):
    """A 5 s chunk with a mask over one part embeds as that part alone would."""
    chunk = torch.from_numpy(call[8 * 16000 : 13 * 16000])
    mask = torch.zeros(1, 293)
    mask[:, 100:250] = 1.0  # about 1.7 s to 4.3 s of the chunk
    masked = model(chunk[None, None, :], weights=mask)
    alone = model(chunk[int(1.71 * 16000) : int(4.27 * 16000)][None, None, :])
    assert float((masked * alone).sum()) > 0.98
    assert torch.allclose(masked.norm(dim=1), torch.ones(1))


@torch.inference_mode()
def test_too_little_speech_is_nan_not_a_guess(model, call):
    chunk = torch.from_numpy(call[8 * 16000 : 13 * 16000])[None, None, :]
    mask = torch.zeros(2, 293)
    mask[0, :20] = 1.0  # 0.3 s
    mask[1, :100] = 1.0  # 1.7 s
    embeddings = model(chunk.expand(2, 1, -1), weights=mask)
    assert torch.isnan(embeddings[0]).all() and not torch.isnan(embeddings[1]).any()
    assert torch.isnan(model(torch.zeros(1, 1, 300))).all()  # shorter than one frame


@torch.inference_mode()
def test_the_two_voices_of_the_real_call_are_told_apart(model, call):
    """Each turn of a speaker is nearer that speaker's other turns than the other speaker's.
    (GE2E, the encoder before, scored one speaker's turns 0.71-0.83 against the other's
    reference and only 0.80-0.88 against its own.)"""
    reference = reference_annotation(sample_speech_path().with_suffix(".rttm"))
    turns = [(s, label) for s, _, label in reference.itertracks(yield_label=True) if s.duration >= 1.0]
    clips = [torch.from_numpy(call[int(s.start * 16000) : int(s.end * 16000)]) for s, _ in turns]
    vectors = torch.cat([model(clip[None, None, :]) for clip in clips]).numpy()
    labels = np.array([label for _, label in turns])
    for i, label in enumerate(labels):
        others = np.arange(len(labels)) != i
        own = vectors[others & (labels == label)].mean(0)
        other = vectors[labels != label].mean(0)
        assert vectors[i] @ own > vectors[i] @ other, f"turn {i} ({label})"
