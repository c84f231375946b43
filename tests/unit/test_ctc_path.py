"""The NumPy trellis and backtracking give WhisperX's path, frame for frame."""

from __future__ import annotations

import pytest
import torch
from whisperx import alignment as whisperx_alignment

from app.engine.align import ctc_path

ORIGINAL_TRELLIS = whisperx_alignment.get_trellis
ORIGINAL_BACKTRACK = whisperx_alignment.backtrack


def emissions(frames: int, vocabulary: int, seed: int, peaked: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(frames, vocabulary, generator=generator) * (8.0 if peaked else 1.0)
    return torch.log_softmax(logits, dim=-1)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("peaked", [False, True])
def test_same_trellis_and_path_as_whisperx(seed, peaked):
    emission = emissions(frames=700, vocabulary=30, seed=seed, peaked=peaked)
    generator = torch.Generator().manual_seed(100 + seed)
    tokens = torch.randint(1, 30, (120,), generator=generator).tolist()

    expected_trellis = ORIGINAL_TRELLIS(emission, tokens, 0)
    trellis = ctc_path.get_trellis(emission, tokens, 0)
    assert torch.equal(trellis, expected_trellis)

    expected = ORIGINAL_BACKTRACK(expected_trellis, emission, tokens, 0)
    path = ctc_path.backtrack(trellis, emission, tokens, 0)
    assert expected is not None and path is not None
    assert [(p.token_index, p.time_index) for p in path] == [(p.token_index, p.time_index) for p in expected]
    assert [p.score for p in path] == pytest.approx([p.score for p in expected], rel=1e-6)


def test_a_text_longer_than_the_audio_fails_like_whisperx():
    emission = emissions(frames=10, vocabulary=30, seed=0, peaked=False)
    tokens = list(range(1, 25))
    assert ORIGINAL_BACKTRACK(ORIGINAL_TRELLIS(emission, tokens, 0), emission, tokens, 0) is None
    assert ctc_path.backtrack(ctc_path.get_trellis(emission, tokens, 0), emission, tokens, 0) is None
