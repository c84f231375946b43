"""The offline diarizer on real speech, the choice between it and a pretrained pipeline, and no network."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from app.control.cancellation import CancelToken
from app.engine.options import SpeakerHints
from app.engine.speakers.diarization import DiarizerUnavailable, PyannoteDiarizer, load_diarizer
from app.errors import Cancelled
from app.serving.warmup import sample_speech
from tests.support.scoring import hypothesis_annotation, reference_annotation


@pytest.fixture(scope="module")
def offline() -> PyannoteDiarizer:
    return PyannoteDiarizer.offline("cpu")


@pytest.fixture(scope="module")
def sample_audio() -> np.ndarray:
    return sample_speech()


def der(turns, rttm: Path) -> float:
    from pyannote.metrics.diarization import DiarizationErrorRate

    hypothesis = hypothesis_annotation([vars(t) for t in turns])
    return float(DiarizationErrorRate(collar=0.25)(reference_annotation(rttm), hypothesis))


def test_sample_call_gets_two_speakers_with_no_network(offline, sample_audio, sample_wav, monkeypatch):
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network access during diarization")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    turns = offline(sample_audio, SpeakerHints())
    assert attempts == [], "the offline diarizer tried to open a connection"
    assert len({t.speaker for t in turns}) == 2
    assert der(turns, sample_wav.with_suffix(".rttm")) <= 0.10


@pytest.mark.parametrize(
    ("hints", "allowed"),
    [
        (SpeakerHints(num_speakers=3), {3}),
        (SpeakerHints(num_speakers=1), {1}),
        (SpeakerHints(max_speakers=1), {1}),
        (SpeakerHints(min_speakers=3, max_speakers=4), {3, 4}),
    ],
)
def test_speaker_hints_bound_the_count(offline, sample_audio, hints, allowed):
    turns = offline(sample_audio, hints)
    assert len({t.speaker for t in turns}) in allowed


def test_silence_has_no_speakers(offline):
    assert offline(np.zeros(16000 * 5, dtype=np.float32), SpeakerHints()) == []


def test_embeddings_are_batched_and_independent_of_the_batch(offline, sample_audio):
    model = offline._pipeline._embedding.model
    chunks = torch.from_numpy(sample_audio[: 16000 * 20].copy()).reshape(4, 1, 16000 * 5)
    masks = torch.ones(4, 293)
    masks[1, 150:] = 0  # half the chunk
    masks[2, 10:] = 0  # 0.17 s: too short to embed
    with torch.inference_mode():
        together = model(chunks, weights=masks)
        alone = torch.cat([model(chunks[i : i + 1], weights=masks[i : i + 1]) for i in range(4)])
    assert together.shape == (4, 192)
    assert torch.isnan(together[2]).all() and torch.isnan(alone[2]).all()
    keep = [0, 1, 3]
    torch.testing.assert_close(together[keep], alone[keep], atol=1e-4, rtol=1e-4)
    assert torch.allclose(together[keep].norm(dim=1), torch.ones(3), atol=1e-5)


def test_auto_falls_back_to_offline_and_says_why(tmp_path):
    loaded = load_diarizer(
        "auto", "pyannote/speaker-diarization-community-1", device="cpu", hf_token=None, cache_dir=tmp_path
    )
    assert loaded.diarizer.name == "offline"
    assert loaded.fallback_reason and "HF_TOKEN" in loaded.fallback_reason


def test_pyannote_choice_never_falls_back(tmp_path):
    with pytest.raises(DiarizerUnavailable, match="HF_TOKEN"):
        load_diarizer(
            "pyannote", "pyannote/speaker-diarization-community-1", device="cpu", hf_token=None, cache_dir=tmp_path
        )


def test_a_cached_pretrained_pipeline_is_preferred(tmp_path, monkeypatch, sample_audio):
    """A small pipeline put in the hub cache is loaded by the same code as pyannote's gated one."""
    import huggingface_hub.constants

    revision = "0" * 40
    repo = tmp_path / "pyannote" / "models--test-org--tiny-diarization"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    (snapshot / "config.yaml").write_text(
        "version: 4.0.0\n"
        "pipeline:\n"
        "  name: tests.support.pyannote_reference.ReferenceDiarization\n"
        "  params:\n"
        "    segmentation_batch_size: 8\n"
        "params:\n"
        "  segmentation:\n"
        "    threshold: 0.5\n"
        "    min_duration_off: 0.0\n"
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    loaded = load_diarizer("auto", "test-org/tiny-diarization", device="cpu", hf_token="hf_test", cache_dir=tmp_path)
    assert loaded.fallback_reason is None
    assert loaded.diarizer.name == "test-org/tiny-diarization"
    # pyannote's pipeline, given the whole-array frame steps (pretrained_steps.py)
    assert {"get_embeddings", "speaker_count", "reconstruct", "to_annotation"} <= set(vars(loaded.diarizer._pipeline))
    assert len({t.speaker for t in loaded.diarizer(sample_audio, SpeakerHints(num_speakers=2))}) == 2


@pytest.mark.parametrize("seconds", [0.3, 4.0])
def test_clips_shorter_than_a_chunk_get_one_speaker_not_an_error(offline, sample_audio, seconds):
    clip = sample_audio[6 * 16000 : int((6 + seconds) * 16000)]
    for hints in (SpeakerHints(), SpeakerHints(num_speakers=2), SpeakerHints(min_speakers=2)):
        assert len({t.speaker for t in offline(clip, hints)}) <= 1


def test_a_cancelled_request_stops_diarizing_at_the_next_batch(offline, sample_audio):
    """Cancellation reaches inside the diarizer (pyannote's hook), not only between stages."""
    cancel = CancelToken()
    steps: list[str] = []
    pipeline = offline._pipeline

    def cancelling(file, **kwargs):  # the pipeline, with the client leaving at its first report
        inner = kwargs["hook"]

        def cancelling_hook(step, *args, **kw):
            steps.append(step)
            cancel.cancel("the client disconnected")  # as if the client left during segmentation
            inner(step, *args, **kw)

        return pipeline(file, **{**kwargs, "hook": cancelling_hook})

    offline._pipeline = cancelling
    try:
        with pytest.raises(Cancelled, match="client disconnected"):
            offline(sample_audio, SpeakerHints(), cancel)
    finally:
        offline._pipeline = pipeline
    assert steps == ["segmentation"], "it went on past the first step"
    assert offline(sample_audio, SpeakerHints(num_speakers=2)), "the diarizer works again afterwards"
