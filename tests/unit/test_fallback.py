"""Per-window checks on the batched path (app/engine/whisper/fallback.py): the rules as pure
functions, and Whisper's stage with an engine whose decodes depend on the temperature."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from app.engine.decoding import Decoding, Sampling
from app.engine.options import Capabilities, TranscribeOptions, resolve
from app.engine.vad import SpeechChunk
from app.engine.whisper import fallback
from app.engine.whisper.engine import Decoded
from app.engine.whisper.fallback import Attempt, Checks
from app.engine.whisper.stage import Whisper
from app.runtime.timing import StepTimer

pytestmark = pytest.mark.unit

EOT = 100
CHECKS = Checks()
CAPABILITIES = Capabilities("m", False, frozenset({"en"}), False, None, 8, 16)


def test_a_loop_or_unlikely_tokens_fail_and_silence_passes():
    assert fallback.passes(Attempt(0.0, -0.3, 0.1, 1.8), CHECKS)
    assert not fallback.passes(Attempt(0.0, -0.3, 0.1, 2.5), CHECKS)  # compresses like a loop
    assert not fallback.passes(Attempt(0.0, -1.2, 0.1, 1.5), CHECKS)  # unlikely tokens
    assert fallback.passes(Attempt(0.0, -1.2, 0.9, 3.0), CHECKS)  # no speech: decoding again invents
    assert fallback.compression_ratio("Hello. " * 40) > 2.4 > fallback.compression_ratio("The quick brown fox.")


def test_when_every_temperature_fails_the_likeliest_unlooped_decode_is_kept():
    tries = [Attempt(0.0, -0.5, 0.1, 3.0), Attempt(0.2, -1.4, 0.1, 1.5), Attempt(0.4, -1.1, 0.1, 1.6)]
    assert fallback.chosen(tries, CHECKS) == 2
    looping = [Attempt(0.0, -0.5, 0.1, 3.0), Attempt(0.2, -0.2, 0.1, 4.0)]
    assert fallback.chosen(looping, CHECKS) == 1  # all loop: the likeliest
    assert fallback.chosen([*tries, Attempt(0.6, -0.4, 0.1, 1.4)], CHECKS) == 3  # the last passed


def test_the_no_speech_rule():
    assert fallback.no_speech(Attempt(0.0, -1.5, 0.8, 1.0), CHECKS)
    assert not fallback.no_speech(Attempt(0.0, -0.5, 0.8, 1.0), CHECKS)  # likely words overrule it
    assert not fallback.no_speech(Attempt(0.0, -1.5, 0.3, 1.0), CHECKS)


@pytest.mark.parametrize(
    ("temperature", "expected"),
    [(0.0, fallback.TEMPERATURES), (0.4, (0.4,)), ([0.0], (0.0,)), ("0,0.5", (0.0, 0.5)), ([0.2, 0.6], (0.2, 0.6))],
)
def test_the_temperature_schedule_a_request_asks_for(temperature, expected):
    options = TranscribeOptions(temperature=temperature, compression_ratio_threshold=3.0)
    checks = resolve(options, CAPABILITIES).checks
    assert checks.temperatures == expected and checks.compression_ratio_threshold == 3.0
    assert checks.log_prob_threshold == fallback.LOG_PROB_THRESHOLD


@pytest.mark.parametrize("temperature", [-0.1, 1.5, [], [0.0] * 7, "0,x"])
def test_a_schedule_out_of_range_is_refused(temperature):
    with pytest.raises(ValueError):
        TranscribeOptions(temperature=temperature)


class _Tokenizer:
    eot = EOT

    def decode(self, tokens: list[int]) -> str:
        return "".join(f" w{t}" for t in tokens)


class _Engine:
    """Window k's features hold k. At temperature 0, window 1 loops and window 2 is unlikely;
    window 3 is silence (no speech, unlikely tokens); at 0.2 and above each decodes well."""

    source = SimpleNamespace(display_name="fake")
    multilingual = False
    languages = frozenset({"en"})
    n_mels = 80
    feature_device = "cpu"
    takes_short_windows = False
    refills_windows = False

    def __init__(self) -> None:
        self.model_seconds = StepTimer()
        self.calls: list[tuple[float, list[int]]] = []

    def tokenizer(self, language: str, task: str) -> _Tokenizer:
        return _Tokenizer()

    def prompt(self, tokenizer: _Tokenizer, initial_prompt: str | None, hotwords: str | None = None) -> list[int]:
        return [1]

    def decode(self, features: np.ndarray, prompt: list[int], sampling: Sampling, *, logprobs: bool = False):
        windows = [round(float(f.max())) for f in features]
        self.calls.append((sampling.temperature, windows))
        out = []
        for k in windows:
            if sampling.temperature == 0 and k == 1:
                out.append(Decoded([7] * 60 + [EOT], -0.2, 0.01))
            elif sampling.temperature == 0 and k == 2:
                out.append(Decoded([k, EOT], -1.6, 0.01))
            elif k == 3:
                out.append(Decoded([42, EOT], -1.8, 0.95))
            else:
                out.append(Decoded([k, EOT], -0.3, 0.01))
        return out


def _transcribe(windows: int, checks: Checks, monkeypatch: pytest.MonkeyPatch) -> tuple[_Engine, list]:
    """``windows`` one-second windows (window k's audio holds k) through Whisper's stage."""
    engine = _Engine()
    whisper = Whisper(engine)  # type: ignore[arg-type]
    monkeypatch.setattr(
        whisper, "_features", lambda audio, frames=3000: np.full((80, frames), float(audio.max()), np.float32)
    )
    audio = np.concatenate([np.full(16000, float(k), np.float32) for k in range(windows)])
    chunks = [SpeechChunk(float(k), float(k) + 1) for k in range(windows)]
    try:
        return engine, whisper.transcribe(audio, chunks, Decoding("en", "transcribe", None, checks, batch_size=8))
    finally:
        whisper.scheduler.close()


def test_windows_that_fail_are_decoded_again_together_and_silence_gives_no_text(monkeypatch):
    engine, segments = _transcribe(5, Checks(), monkeypatch)
    assert engine.calls == [(0.0, [0, 1, 2, 3, 4]), (0.2, [1, 2])]  # the silent window is not retried
    assert [(s.text.strip(), s.temperature) for s in segments] == [("w0", 0.0), ("w1", 0.2), ("w2", 0.2), ("w4", 0.0)]
    assert segments[1].compression_ratio is not None and segments[1].compression_ratio < 2.4


def test_once_decodes_each_window_once_and_keeps_what_it_gets(monkeypatch):
    engine, segments = _transcribe(3, fallback.ONCE, monkeypatch)
    assert engine.calls == [(0.0, [0, 1, 2])]
    assert segments[1].text.count("w7") == 60 and segments[1].compression_ratio > 2.4


def test_language_votes_are_pooled_when_the_first_window_is_unsure():
    from app.engine.whisper import language

    assert language.pooled([("cs", 0.3), ("fr", 0.9), ("fr", 0.6), ("pl", 0.4)]) == ("fr", 0.375)
    windows: list[int] = []

    def submit(features: list[np.ndarray]) -> list[tuple[str, float]]:
        windows.extend(int(f[0]) for f in features)
        return [("cs", 0.3) if int(f[0]) == 0 else ("fr", 0.95) for f in features]

    speech = np.concatenate([np.full(30 * 16000, k, np.float32) for k in range(6)])
    assert language.identify(speech, lambda w: w[:1].copy(), submit) == ("fr", pytest.approx(0.7125))
    assert windows == [0, 1, 2, 3]  # at most MAX_WINDOWS windows: the first, then three more at once
    assert language.unsure("fr", 0.7125, "m") is None and "0.30" in (language.unsure("cs", 0.3, "m") or "")


def test_a_sure_first_window_or_short_speech_is_not_looked_at_again():
    from app.engine.whisper import language

    calls: list[int] = []

    def submit(features: list[np.ndarray]) -> list[tuple[str, float]]:
        calls.append(len(features))
        return [("de", 0.2)] * len(features)

    assert language.identify(np.zeros(20 * 16000, np.float32), lambda w: w, submit) == ("de", 0.2)
    assert language.identify(np.zeros(33 * 16000, np.float32), lambda w: w, submit) == (
        "de",
        0.2,
    )  # 3 s more: too little
    assert calls == [1, 1]
