"""What a Whisper engine does: the model calls, on batches of 30 s windows.

``Whisper`` (stage.py) does everything around them — the windows' features, the prompt, the
batches shared across requests through the scheduler, segments and word times — the same
for every engine. An engine holds one loaded model and answers these calls; CTranslate2
(ctranslate2.py) is the first. Another engine is one new module that satisfies this protocol.

Every call is made by the scheduler's threads only, never by two of them on one replica at
once (``replicas`` say how many may run at the same time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.engine.options import Sampling
from app.engine.whisper.sources import WhisperSource
from app.runtime.timing import StepTimer


@dataclass(frozen=True)
class Decoded:
    """One window's text as the decoder produced it."""

    tokens: list[int]  # text tokens, end-of-text included when decoded
    avg_logprob: float
    no_speech_prob: float


@dataclass(frozen=True)
class AlignmentInput:
    """One segment to time word by word: its log-Mel features, their length, its text's tokens."""

    features: np.ndarray
    num_frames: int
    tokens: list[int]


class WhisperEngine(Protocol):
    name: str  # "ctranslate2": in /health and the job cache's fingerprint
    source: WhisperSource
    model_path: Path | None  # the folder the weights were read from (the fingerprint's digest)
    multilingual: bool
    languages: frozenset[str]
    n_mels: int
    feature_device: str  # where torch computes the log-Mel features ("cuda:0" or "cpu")
    model_seconds: StepTimer  # seconds inside model calls, by kind (encode, decode, align_words, ...)

    def tokenizer(self, language: str, task: str) -> Any:
        """faster-whisper's ``Tokenizer`` for this model, language and task."""

    def prompt(self, tokenizer: Any, initial_prompt: str | None) -> list[int]:
        """The decoder's prompt: previous text, start of transcript, language, task, no timestamps."""

    def decode(self, features: np.ndarray, prompt: list[int], sampling: Sampling) -> list[Decoded]:
        """Encode and decode a batch of windows (beam search at temperature 0, sampling above)."""

    def detect_language(self, features: np.ndarray) -> list[tuple[str, float]]:
        """The likeliest language of each window, with its probability."""

    def alignment_features(self, audio: np.ndarray) -> tuple[np.ndarray, int]:
        """The features ``align_words`` takes for a segment of audio, and their length in frames."""

    def align_words(self, inputs: list[AlignmentInput], tokenizer: Any) -> list[list[dict[str, Any]]]:
        """Each segment's words with start, end and probability (faster-whisper's word dictionaries)."""
