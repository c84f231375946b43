"""The wav2vec2 path, end to end through the real pipeline, with an aligner the test builds.

No wav2vec2 CTC weights ship in any package, so the aligner here is a small randomly
initialised ``Wav2Vec2ForCTC`` saved like a hub checkpoint and loaded through the same
``ALIGN_MODELS`` → ``whisperx.load_align_model`` path users take. Its times are meaningless;
what is tested is the plumbing: it loads, it is used, and its output is well formed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.engine.align.aligners import AlignerCache
from app.engine.audio import decode_audio
from app.engine.options import ResolvedOptions, SpeakerHints
from app.engine.pipeline import TranscriptionPipeline
from app.engine.vad import load_speech_detector
from app.engine.whisper import fallback

LETTERS = list("abcdefghijklmnopqrstuvwxyz'")


@pytest.fixture(scope="module")
def random_aligner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    target = tmp_path_factory.mktemp("wav2vec2-random")
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4} | {c: 5 + i for i, c in enumerate(LETTERS)}
    (target / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(target / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(target)
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
    )
    Wav2Vec2ForCTC(config).save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def audio(sample_wav):
    return decode_audio(sample_wav, timeout_s=60, max_seconds=60)


def _aligners(directory: Path, tmp_path: Path, capacity: int = 4, languages=("en",)) -> AlignerCache:
    overrides = {language: str(directory) for language in languages}
    return AlignerCache(device="cpu", overrides=overrides, cache_dir=tmp_path, capacity=capacity)


def test_the_configured_aligner_times_the_words(whisper, audio, random_aligner_dir, tmp_path):
    options = ResolvedOptions("en", "transcribe", False, SpeakerHints(), None, 4, True, fallback.ONCE)
    vad = load_speech_detector("pyannote", "cpu")
    aligners = _aligners(random_aligner_dir, tmp_path)
    aligned = TranscriptionPipeline(whisper, vad=vad, device="cpu", aligners=aligners, diarizer=None).run(
        audio, options
    )
    whisper_timed = TranscriptionPipeline(whisper, vad=vad, device="cpu", aligners=None, diarizer=None).run(
        audio, options
    )

    assert aligned.word_time_source == "wav2vec2"
    assert whisper_timed.word_time_source == "whisper"
    words = [w for s in aligned.segments for w in s.words]
    assert [w.word for w in words] == [w.word for s in whisper_timed.segments for w in s.words]
    assert all(0.0 <= w.start <= w.end <= aligned.duration for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert "alignment" in aligned.timings


def test_aligners_are_cached_per_language_and_bounded(random_aligner_dir, tmp_path):
    cache = _aligners(random_aligner_dir, tmp_path, capacity=1, languages=("en", "de"))
    english = cache.get("en")
    assert english is not None and cache.get("en") is english
    assert cache.get("de") is not None
    assert [a["language"] for a in cache.status()["loaded"]] == ["de"]


def test_a_language_without_aligner_is_remembered_with_the_reason(tmp_path):
    cache = AlignerCache(device="cpu", overrides={}, cache_dir=tmp_path, capacity=2)
    assert cache.get("haw") is None
    assert "no wav2vec2 model is known" in (cache.unavailable_reason("haw") or "")
    assert cache.status()["unavailable"] == {"haw": cache.unavailable_reason("haw")}


PARITY_SEGMENTS = [
    (0.5, 9.8, " Hello. Hello, Mr. Smith! It's 2024, and 50% off...  "),
    (10.0, 20.0, "I didn't know you were there. Neither did I. Okay? Yes."),
    (20.0, 29.5, "one"),
    (1.0, 2.0, "%%% ###"),  # no character the model knows: the wildcard column
    (29.985, 30.0, "short"),  # under wav2vec2's 400 samples: padded
    (3.0, 3.2, "a sentence with far more characters than this piece of audio has frames to hold them"),
    (40.0, 45.0, "past the end of the audio"),
]


def _comparable(value):
    """Floats as they print (NaN included), so results compare with ==."""
    if isinstance(value, dict):
        return {key: _comparable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    if isinstance(value, float):  # numpy floats included
        return repr(float(value))
    return value


@pytest.mark.parametrize("with_logprob", [True, False])
def test_word_times_are_whisperx_align_s(audio, random_aligner_dir, tmp_path, with_logprob):
    """forced_alignment gives what whisperx.align gives: segments, sentences, words, times, scores."""
    import whisperx

    from app.engine.align.forced import align_segments

    aligner = _aligners(random_aligner_dir, tmp_path).get("en")
    assert aligner is not None
    transcript = [
        {"start": start, "end": end, "text": text, **({"avg_logprob": -0.25} if with_logprob else {})}
        for start, end, text in PARITY_SEGMENTS
    ]
    expected = whisperx.align(transcript, aligner.model, aligner.metadata, audio, "cpu")["segments"]
    assert _comparable(align_segments(transcript, aligner.model, aligner.metadata, audio, "cpu")) == _comparable(
        expected
    )
