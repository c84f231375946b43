"""Audio that tempts Whisper to invent text, with what an honest transcript of each is.

Built from what is here: espeak-ng speech in English and four other languages, sox noise,
chords and near-silence with breaths, and cuts of the real sample call. Each case says what
it expects: ``words`` (the reference text; scored by WER), ``language`` (speech the model
should transcribe in that language, or warn about), or ``nothing`` (no text, or a warning).
Shared by ``bench/invented_text.py`` and the tests.
"""

from __future__ import annotations

import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

RATE = 16_000

FOREIGN = {  # language → (espeak voice, what it says)
    "es": ("es", "Buenos días. Hoy vamos a hablar del presupuesto del próximo año y de los nuevos proyectos."),
    "fr": ("fr", "Bonjour à tous. Nous devons parler du budget de l'année prochaine et des nouveaux projets."),
    "it": ("it", "Buongiorno a tutti. Oggi parliamo del bilancio del prossimo anno e dei nuovi progetti."),
    "de": ("de", "Guten Morgen zusammen. Heute sprechen wir über das Budget des nächsten Jahres."),
}
TREMOLO = ["tremolo", "5", "60", "vol", "0.4"]
ENGLISH = "Good morning everyone. Today we will talk about the budget for next year and the new projects."


@dataclass(frozen=True)
class HardCase:
    name: str
    wav: Path
    expect: Literal["words", "language", "nothing"]
    text: str = ""  # the reference (words)
    language: str = "en"  # what is spoken (words, language)


def build_corpus(out: Path, sample_wav: Path, sample_text: str) -> list[HardCase]:
    """Write the corpus's WAV files into ``out``; the cases, in a fixed order."""
    out.mkdir(parents=True, exist_ok=True)
    cases = [HardCase("english, espeak", _espeak(out / "english.wav", "en-us", ENGLISH), "words", ENGLISH)]
    cases.append(HardCase("the real call", sample_wav, "words", sample_text))
    call = _read(sample_wav)
    for start, end in ((0.0, 8.0), (6.5, 9.5), (14.5, 18.0)):
        path = _write(out / f"call-{start:g}-{end:g}.wav", call[int(start * RATE) : int(end * RATE)])
        cases.append(HardCase(f"call cut {start:g}-{end:g} s", path, "language"))
    for language, (voice, text) in FOREIGN.items():
        cases.append(
            HardCase(f"{language}, espeak", _espeak(out / f"{language}.wav", voice, text), "language", text, language)
        )
    for name, effect in (
        ("white noise", ["synth", "8", "whitenoise", "vol", "0.3"]),
        ("pink noise", ["synth", "8", "pinknoise", "vol", "0.5"]),
        ("a chord with tremolo", ["synth", "8", "sine", "220", "sine", "277", "sine", "330", *TREMOLO]),
        ("a tune", ["synth", "0.4", "pluck", "%-2", "pluck", "%2", "pluck", "%5", "repeat", "14", "vol", "0.5"]),
    ):  # fmt: skip
        cases.append(HardCase(name, _sox(out / f"{name.replace(' ', '-')}.wav", effect), "nothing"))
    cases.append(HardCase("silence with breaths", _breaths(out / "breaths.wav"), "nothing"))
    return cases


def _espeak(path: Path, voice: str, text: str) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(raw), text], check=True, capture_output=True)
        subprocess.run(
            ["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(path)], check=True, capture_output=True
        )
    return path


def _sox(path: Path, effect: list[str]) -> Path:
    # -R: the same "random" noise every run.
    subprocess.run(
        ["sox", "-R", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(path), *effect], check=True, capture_output=True
    )
    return path


def _breaths(path: Path) -> Path:
    """10 s of room tone (-60 dBFS) with three soft breaths: brown noise swelling and fading over 0.6 s."""
    rng = np.random.default_rng(7)
    audio = rng.normal(0, 0.001, 10 * RATE).astype(np.float32)
    for at in (1.5, 4.8, 8.0):
        length = int(0.6 * RATE)
        breath = np.cumsum(rng.normal(0, 1, length)).astype(np.float32)
        breath = (breath - breath.mean()) / (np.abs(breath).max() + 1e-9) * 0.05 * np.hanning(length)
        start = int(at * RATE)
        audio[start : start + length] += breath
    return _write(path, audio)


def _read(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as handle:
        return np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2").astype(np.float32) / 32768


def _write(path: Path, audio: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path
