"""The two Whisper engines on the same bundled weights give the same transcripts (float32, CPU).

Real speech: the pyannote sample call (reference words in sample.stm) and a synthetic
two-voice conversation (espeak-ng, exact reference). Greedy and beam 5, whole files through the
Whisper stage (VAD windows, batches, prompts), word times from Whisper's cross-attention, and
language identification on the multilingual model.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.engine.audio import read_pcm16_wav
from app.engine.decoding import Decoding
from app.engine.vad import SpeechChunk, load_speech_detector
from app.engine.whisper import fallback
from app.engine.whisper.ctranslate2 import CTranslate2Engine
from app.engine.whisper.sources import resolve_whisper_source
from app.engine.whisper.stage import Whisper
from app.engine.whisper.torch_engine import TorchEngine
from app.serving.warmup import sample_speech, sample_speech_path
from tests.support.conversations import make_conversation, tools_available
from tests.support.scoring import read_stm_text, word_error_rate

ENGLISH = Decoding("en", "transcribe", None, fallback.ONCE, 4)


def _both(model: str, cache: Path) -> tuple[Whisper, Whisper]:
    source = resolve_whisper_source(model, "cpu", cache)
    common = {"device": "cpu", "compute_type": "float32", "cpu_threads": 2, "download_root": "unused", "hf_token": None}
    return Whisper(CTranslate2Engine.load(source, **common)), Whisper(TorchEngine.load(source, **common))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Whisper, Whisper]:
    return _both("bundled-tiny.en", tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> list[tuple[str, np.ndarray, str]]:
    """(name, audio, reference text) of each recording."""
    found = [("sample", sample_speech(), read_stm_text(sample_speech_path().with_suffix(".stm")))]
    if tools_available():
        conversation = make_conversation(2, tmp_path_factory.mktemp("conversation"), seed=3, num_turns=6)
        found.append(("conversation", read_pcm16_wav(conversation.wav), conversation.text))
    return found


def _text(whisper: Whisper, audio: np.ndarray, decoding: Decoding) -> str:
    chunks = load_speech_detector("silero", "cpu")(audio)
    return " ".join(s.text for s in whisper.transcribe(audio, chunks, decoding))


@pytest.mark.parametrize("beams", [5, 1], ids=["beam5", "greedy"])
def test_same_transcripts_and_the_same_accuracy(tiny, recordings, beams):
    ctranslate2, torch_engine = tiny
    for whisper in tiny:
        whisper.engine.options = replace(whisper.engine.options, beam_size=beams)
    try:
        for name, audio, reference in recordings:
            ours, theirs = _text(torch_engine, audio, ENGLISH), _text(ctranslate2, audio, ENGLISH)
            assert word_error_rate(theirs, ours) <= 0.01, (name, theirs, ours)
            # Each engine's accuracy against the reference, within half a point of the other's.
            assert abs(word_error_rate(reference, ours) - word_error_rate(reference, theirs)) <= 0.005, name
    finally:
        for whisper in tiny:
            whisper.engine.options = replace(whisper.engine.options, beam_size=5)


def test_same_word_times(tiny):
    ctranslate2, torch_engine = tiny
    audio = sample_speech()
    chunks = load_speech_detector("silero", "cpu")(audio)
    segments = ctranslate2.transcribe(audio, chunks, ENGLISH)
    theirs = [w for s in ctranslate2.time_words(audio, segments, ENGLISH) for w in s.words]
    ours = [w for s in torch_engine.time_words(audio, segments, ENGLISH) for w in s.words]
    assert [w.word for w in ours] == [w.word for w in theirs]
    assert np.abs(np.array([(w.start, w.end) for w in ours]) - [(w.start, w.end) for w in theirs]).max() <= 0.041
    assert np.abs(np.array([w.score for w in ours]) - [w.score for w in theirs]).max() <= 0.01


def test_same_language_and_the_multilingual_text(tmp_path_factory):
    ctranslate2, torch_engine = _both("bundled-base", tmp_path_factory.mktemp("models"))
    audio = sample_speech()
    chunks = load_speech_detector("silero", "cpu")(audio)
    (their_language, their_p), (our_language, our_p) = (
        w.detect_language(audio, chunks) for w in (ctranslate2, torch_engine)
    )
    assert our_language == their_language == "en"
    assert our_p == pytest.approx(their_p, abs=0.01)
    decoding = replace(ENGLISH, task="transcribe", initial_prompt="A phone call between Diane and Sheila.")
    assert word_error_rate(_text(ctranslate2, audio, decoding), _text(torch_engine, audio, decoding)) <= 0.01


def test_both_engines_let_go_of_their_weights_when_unloaded(tmp_path):
    """What WhisperModels' unload calls: the weights go at once, not when Python gets round to it."""
    ctranslate2, torch_engine = _both("bundled-tiny.en", tmp_path)
    held = torch_engine.engine.device_memory_mb()
    assert held is not None and 100 < held < 200  # tiny.en's 39 M parameters in float32
    assert ctranslate2.engine.device_memory_mb() is None  # CTranslate2 does not say (the loader measures it)
    for whisper in (ctranslate2, torch_engine):
        whisper.engine.release()
    assert all(p.device.type == "meta" for p in torch_engine.engine.network.parameters())
    assert not ctranslate2.engine._model.model.model_is_loaded


def test_a_partials_short_window_reads_the_same_words_on_the_torch_engine(tiny):
    """A live partial's window is its audio rounded up to 10 s (Decoding.short_windows): the torch
    engine encodes 1,000 frames instead of 3,000 and hears the words a full window hears;
    CTranslate2, which takes only full windows, decodes a full one."""
    ctranslate2, torch_engine = tiny
    clip = sample_speech()[int(12.5 * 16000) : int(17.8 * 16000)]  # two turns, 5.3 s
    chunks = [SpeechChunk(0.0, len(clip) / 16000)]
    short = replace(ENGLISH, short_windows=True)
    full_text = " ".join(s.text for s in torch_engine.transcribe(clip, chunks, ENGLISH))
    short_text = " ".join(s.text for s in torch_engine.transcribe(clip, chunks, short))
    assert "Chicago" in full_text and word_error_rate(full_text, short_text) <= 0.2, (full_text, short_text)
    assert any(shape.frames == 500 for shape in torch_engine.engine._searches), "the encoder read 10 s"
    ct2_text = " ".join(s.text for s in ctranslate2.transcribe(clip, chunks, short))
    assert ct2_text == " ".join(s.text for s in ctranslate2.transcribe(clip, chunks, ENGLISH))


@pytest.mark.parametrize("beams", [5, 1], ids=["beam5", "greedy"])
def test_windows_that_join_a_running_batch_read_as_when_decoded_alone(tiny, beams):
    """Continuous batching on real speech: the sample's windows go through a batch of two places,
    each joining as another ends (at other steps than its batch-mates), and read exactly as
    each window decoded alone."""
    _, torch_engine = tiny
    engine = torch_engine.engine
    engine.options = replace(engine.options, beam_size=beams)
    try:
        audio = sample_speech()
        spans = [(6.4, 30.0), (12.5, 15.0), (6.4, 20.0), (20.0, 23.0), (15.0, 30.0), (8.0, 12.0)]  # seconds
        features = [torch_engine._features(audio[int(a * 16000) : int(b * 16000)]) for a, b in spans]
        tokenizer = engine.tokenizer("en", "transcribe")
        prompt = engine.prompt(tokenizer, None)
        sampling = ENGLISH.sampling
        alone = [engine.decode(f[None], prompt, sampling)[0].tokens for f in features]
        waiting = features[2:]
        joined: dict[int, list[int]] = {}

        def more(count: int) -> list[np.ndarray]:
            taken = waiting[:count]
            del waiting[:count]
            return taken

        engine.decode_refilled(
            np.stack(features[:2]), prompt, sampling, more, lambda n, d: joined.__setitem__(n, d.tokens)
        )
    finally:
        engine.options = replace(engine.options, beam_size=5)
    assert len({len(tokens) for tokens in alone}) > 1  # windows of different lengths: they ended apart
    assert [joined[number] for number in range(len(features))] == alone


def test_prepare_readies_every_bucket_of_full_and_short_windows(tiny):
    """Files' full windows and live partials' short ones (10 and 20 s: 500 and 1,000 audio states),
    every batch bucket up to the batch size: on CUDA their graphs, the largest bucket's at once."""
    _, torch_engine = tiny
    torch_engine.prepare(4, ENGLISH)
    prepared = {(shape.windows, shape.frames) for shape in torch_engine.engine._searches}
    assert {(w, f) for w in (1, 2, 4) for f in (None, 500, 1000)} <= prepared
