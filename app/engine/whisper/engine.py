"""What a Whisper engine does: the model calls, on batches of 30 s windows.

``Whisper`` (stage.py) does everything around them — the windows' features, the prompt, the
batches shared across requests through the scheduler, segments and word times — the same
for every engine. An engine holds one loaded model and answers these calls; CTranslate2
(ctranslate2.py) is the first. Another engine is one new module that satisfies this protocol.

Every call is made by the scheduler's threads only, never by two of them on one replica at
once (``replicas`` say how many may run at the same time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

import numpy as np

from app.engine.decoding import Sampling
from app.engine.whisper.sources import WhisperSource
from app.runtime.timing import StepTimer
from app.transcript import TokenLogprob


@dataclass(frozen=True)
class Decoded:
    """One window's text as the decoder produced it."""

    tokens: list[int]  # text tokens, end-of-text included when decoded
    avg_logprob: float
    no_speech_prob: float
    # Each text token's log-probability under the decoder (end of text excluded), when asked for.
    token_logprobs: list[float] | None = None


@dataclass(frozen=True)
class AlignmentInput:
    """One segment to time word by word: its log-Mel features, their length, its text's tokens."""

    features: np.ndarray
    num_frames: int
    tokens: list[int]


class WhisperEngine(Protocol):
    name: str  # "ctranslate2" or "torch": in /health and the job cache's fingerprint
    source: WhisperSource
    model_path: Path | None  # the folder the weights were read from (the fingerprint's digest)
    multilingual: bool
    languages: frozenset[str]
    n_mels: int
    feature_device: str  # where torch computes the log-Mel features ("cuda:0" or "cpu")
    model_seconds: StepTimer  # seconds inside model calls, by kind (encode, decode, align_words, ...)
    # Whether ``decode`` takes windows shorter than 30 s (their log-Mel frames cut, the encoder's
    # positions too): CTranslate2 refuses anything but 3,000 frames.
    takes_short_windows: bool
    # Whether it has ``decode_refilled`` (RefillingEngine): windows join a running batch as others end.
    refills_windows: bool

    def tokenizer(self, language: str, task: str) -> Any:
        """faster-whisper's ``Tokenizer`` for this model, language and task."""

    def prompt(self, tokenizer: Any, initial_prompt: str | None, hotwords: str | None = None) -> list[int]:
        """The decoder's prompt: hotwords and previous text, start of transcript, language, task, no timestamps."""

    def prepare(self, batch_size: int, prompt: list[int]) -> None:
        """Make every batch of up to ``batch_size`` windows after such a prompt fast from its first
        call (the torch engine captures its CUDA graphs; CTranslate2 has nothing to do)."""

    def decode(
        self, features: np.ndarray, prompt: list[int], sampling: Sampling, *, logprobs: bool = False
    ) -> list[Decoded]:
        """Encode and decode a batch of windows (beam search at temperature 0, sampling above);
        with ``logprobs``, each text token's log-probability too. ``features`` is (windows, mels,
        frames): 3,000 frames, or fewer where ``takes_short_windows``."""

    def detect_language(self, features: np.ndarray) -> list[tuple[str, float]]:
        """The likeliest language of each window, with its probability."""

    def alignment_features(self, audio: np.ndarray) -> tuple[np.ndarray, int]:
        """The features ``align_words`` takes for a segment of audio, and their length in frames."""

    def align_words(self, inputs: list[AlignmentInput], tokenizer: Any) -> list[list[dict[str, Any]]]:
        """Each segment's words with start, end and probability (faster-whisper's word dictionaries)."""

    def release(self) -> None:
        """Let go of the weights and buffers (the model is being unloaded; no call comes after)."""

    def device_memory_mb(self) -> float | None:
        """What the model holds on its device (weights, decoding buffers), when the engine can tell."""


class RefillingEngine(WhisperEngine, Protocol):
    def decode_refilled(
        self,
        features: np.ndarray,
        prompt: list[int],
        sampling: Sampling,
        more: Callable[[int], list[np.ndarray]],
        deliver: Callable[[int, Decoded], None],
    ) -> None:
        """``decode``, with the places of windows that end taken by ``more(n)``'s windows;
        ``deliver(number, decoded)`` hears each window as it ends, numbered in the order they came."""


def choose_engine(setting: str, device: str) -> str:
    """``ENGINE``'s engine on ``device``: ``auto`` is torch on CUDA, CTranslate2 on the CPU."""
    if setting != "auto":
        return setting
    return "torch" if device == "cuda" else "ctranslate2"


# What every engine does the same way: tokenizers, prompts, alignment features, words from a path.

_PREVIOUS_TEXT_TOKENS = 223  # faster-whisper keeps the last 448 // 2 - 1 tokens of previous text


class TokenizerCache:
    """faster-whisper's ``Tokenizer`` per language and task, each built once (it caches its special tokens)."""

    def __init__(self, hf_tokenizer: Any, multilingual: bool) -> None:
        self._hf_tokenizer = hf_tokenizer
        self._multilingual = multilingual
        self._built: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def languages(self) -> list[str]:
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        return list(_LANGUAGE_CODES) if self._multilingual else ["en"]

    def get(self, language: str, task: str) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        key = (language, task)
        with self._lock:
            if key not in self._built:
                self._built[key] = Tokenizer(self._hf_tokenizer, self._multilingual, task=task, language=language)
            return self._built[key]


def whisper_prompt(tokenizer: Any, initial_prompt: str | None, hotwords: str | None = None) -> list[int]:
    """The decoder's prompt: previous text, start of transcript, language, task, no timestamps.

    Hotwords go first in the previous-text slot, then the end of the initial prompt in the room
    left (faster-whisper's ``get_prompt`` order), so the decoder leans toward their spelling."""
    hot = tokenizer.encode(" " + hotwords.strip())[:_PREVIOUS_TEXT_TOKENS] if hotwords and hotwords.strip() else []
    previous = tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt and initial_prompt.strip() else []
    room = _PREVIOUS_TEXT_TOKENS - len(hot)
    context = [*hot, *(previous[-room:] if room > 0 else [])]
    head = [tokenizer.sot_prev, *context] if context else []
    return [*head, *tokenizer.sot_sequence, tokenizer.no_timestamps]


def alignment_features(n_mels: int, audio: np.ndarray) -> tuple[np.ndarray, int]:
    """faster-whisper's features of a segment for word alignment, padded to 30 s, and their length."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    extractor = _extractors.get(n_mels)
    if extractor is None:
        extractor = _extractors.setdefault(n_mels, FeatureExtractor(feature_size=n_mels))
    mel = extractor(audio)[..., :-1]
    return pad_or_trim(mel), min(mel.shape[-1], extractor.nb_max_frames)


_extractors: dict[int, Any] = {}


def find_alignment(tokenizer: Any, texts: list[list[int]], paths: list[Any]) -> list[list[dict[str, Any]]]:
    """Words with start, end and probability from each text's alignment path (``None``: no text).

    faster-whisper's ``WhisperModel.find_alignment`` does this after CTranslate2's ``align``;
    it is called with the paths already found, so both engines share its word rules.
    """
    from faster_whisper.transcribe import WhisperModel

    found = [(text, path) for text, path in zip(texts, paths, strict=True) if path is not None]
    if not found:
        return [[] for _ in texts]
    computed = SimpleNamespace(align=lambda *args, **kwargs: [path for _, path in found])
    # 100 feature frames per second, halved by the encoder's second convolution.
    model = SimpleNamespace(model=computed, tokens_per_second=50)
    words = iter(WhisperModel.find_alignment(model, tokenizer, [t for t, _ in found], None, 0))
    return [next(words) if path is not None else [] for path in paths]


# A decoded window's tokens as OpenAI lists them (``logprobs``): text, log-probability, bytes.


def token_logprobs(tokenizer: Any, tokens: list[int], window: Decoded) -> list[TokenLogprob]:
    """Each text token of a window as OpenAI lists it: its text, log-probability and bytes."""
    scores = window.token_logprobs or []
    listed = []
    for token, logprob in zip(tokens, scores, strict=False):
        raw = token_bytes(tokenizer, token)
        listed.append(TokenLogprob(raw.decode("utf-8", errors="replace"), round(logprob, 6), list(raw)))
    return listed


def token_bytes(tokenizer: Any, token: int) -> bytes:
    """The bytes a Whisper token stands for (its byte-level BPE piece, mapped back to bytes)."""
    piece = tokenizer.tokenizer.id_to_token(token) or ""
    return bytes(_BYTE_OF_CHAR.get(char, 0x3F) for char in piece)


def _bytes_to_unicode() -> dict[str, int]:
    # GPT-2's byte-level alphabet (Whisper's tokenizer): printable bytes stand for themselves,
    # the others are shifted to code points from 256 up.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, shift = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + shift)] = byte
            shift += 1
    return chars


_BYTE_OF_CHAR = _bytes_to_unicode()
