"""The aligner tables and loader that spare the English default an import of transformers match WhisperX's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from whisperx import alignment as whisperx_alignment

from app.engine.align import ctc_path
from app.engine.align import models as align_models
from tests.support.random_aligner import write_random_aligner


def test_tables_are_whisperxs():
    assert align_models.TORCHAUDIO_MODELS == whisperx_alignment.DEFAULT_ALIGN_MODELS_TORCH
    assert list(align_models.LANGUAGES_WITHOUT_SPACES) == whisperx_alignment.LANGUAGES_WITHOUT_SPACES
    assert align_models.default_model_name("ja") == whisperx_alignment.DEFAULT_ALIGN_MODELS_HF["ja"]
    assert align_models.default_model_name("xx") is None


def test_a_torchaudio_aligner_loads_as_whisperx_loads_it(tmp_path: Path):
    write_random_aligner(tmp_path)  # WAV2VEC2_ASR_BASE_960H, where torchaudio looks for it
    model_dir = str(tmp_path / "align")
    ours, metadata = align_models.load_align_model("en", "cpu", None, model_dir, True)
    theirs, expected = whisperx_alignment.load_align_model("en", "cpu", model_dir=model_dir, model_cache_only=True)
    assert metadata == expected
    assert type(ours) is type(theirs)
    theirs_state = theirs.state_dict()
    assert all(torch.equal(value, theirs_state[name]) for name, value in ours.state_dict().items())


def test_a_language_without_a_model_is_refused_like_whisperx():
    with pytest.raises(ValueError, match="No default align-model for language: xx"):
        align_models.load_align_model("xx", "cpu", None, "/nonexistent", True)
    with pytest.raises(ValueError, match="No default align-model for language: xx"):
        whisperx_alignment.load_align_model("xx", "cpu")


def test_merge_repeats_is_whisperxs():
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 6, (200,), generator=generator).sort().values.tolist()
    scores = torch.rand(200, generator=generator).tolist()
    path = [ctc_path.Point(token, time, score) for time, (token, score) in enumerate(zip(tokens, scores, strict=True))]
    theirs_path = [whisperx_alignment.Point(p.token_index, p.time_index, p.score) for p in path]
    ours = ctc_path.merge_repeats(path, "abcdef")
    theirs = whisperx_alignment.merge_repeats(theirs_path, "abcdef")
    assert [(s.label, s.start, s.end, s.score) for s in ours] == [(s.label, s.start, s.end, s.score) for s in theirs]
