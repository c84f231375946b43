"""Whisper's stage hands each window's text on in audio order, as soon as its batch is done,
while later batches are still being decoded (what ``stream=true`` and live sessions read)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np

from app.engine.decoding import Decoding, Sampling
from app.engine.vad import SpeechChunk
from app.engine.whisper import fallback
from app.engine.whisper.engine import Decoded
from app.engine.whisper.stage import Whisper
from app.runtime.timing import StepTimer
from app.transcript import TextPiece

EOT = 100


class _Tokenizer:
    eot = EOT

    def decode(self, tokens: list[int]) -> str:
        return "".join(f" w{t}" for t in tokens)


class _Engine:
    """Decodes window k into the word ``w{k}`` (silence for k = 1); batch 3 waits for a signal."""

    source = SimpleNamespace(display_name="fake")
    multilingual = False
    languages = frozenset({"en"})
    n_mels = 80
    feature_device = "cpu"
    takes_short_windows = False
    refills_windows = False

    def __init__(self, gate: threading.Event) -> None:
        self.model_seconds = StepTimer()
        self.gate = gate
        self.batches = 0

    def tokenizer(self, language: str, task: str) -> _Tokenizer:
        return _Tokenizer()

    def prompt(self, tokenizer: _Tokenizer, initial_prompt: str | None, hotwords: str | None = None) -> list[int]:
        return [1]

    def decode(self, features: np.ndarray, prompt: list[int], sampling: Sampling, *, logprobs: bool = False):
        batch, self.batches = self.batches, self.batches + 1
        if batch == 2:
            assert self.gate.wait(10), "the first batch's text was not handed on while later ones decoded"
        first = batch * features.shape[0]
        return [
            Decoded([first + i, EOT] if first + i != 1 else [EOT], -0.1, 0.01, [-0.5] if logprobs else None)
            for i in range(features.shape[0])
        ]


class _Listener:
    def __init__(self, logprobs: bool) -> None:
        self.logprobs = logprobs
        self.pieces: list[TextPiece] = []
        self.first = threading.Event()

    def __call__(self, piece: TextPiece) -> None:
        self.pieces.append(piece)
        self.first.set()


def test_pieces_come_in_order_before_the_last_batch_is_decoded():
    listener = _Listener(logprobs=False)
    whisper = Whisper(_Engine(listener.first))  # type: ignore[arg-type]
    audio = np.zeros(16000 * 8, dtype=np.float32)
    chunks = [SpeechChunk(float(k), float(k) + 1) for k in range(8)]
    decoding = Decoding("en", "transcribe", None, fallback.ONCE, batch_size=2)
    try:
        segments = whisper.transcribe(audio, chunks, decoding, listener=listener)
    finally:
        whisper.scheduler.close()
    assert [p.text for p in listener.pieces] == [f"w{k}" for k in range(8) if k != 1]  # window 1 said nothing
    assert [p.index for p in listener.pieces] == list(range(7))
    assert [(p.start, p.end) for p in listener.pieces] == [(s.start, s.end) for s in segments]
    assert " ".join(p.text for p in listener.pieces) == " ".join(s.text.strip() for s in segments)
    assert all(p.logprobs is None for p in listener.pieces)
