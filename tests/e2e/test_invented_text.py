"""No invented text on the real server (bundled base; tiny.en by name): speech in another
language, a chord and the OpenAI SDK's verbose_json, from the corpus bench/invented_text.py measures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.hard_audio import HardCase, build_corpus
from tests.support.scoring import read_stm_text
from tests.support.server import post_audio


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, sample_wav: Path) -> dict[str, HardCase]:
    cases = build_corpus(tmp_path_factory.mktemp("hard"), sample_wav, read_stm_text(sample_wav.with_suffix(".stm")))
    return {case.name: case for case in cases}


def test_an_english_only_model_says_it_cannot_tell_another_language(http, corpus):
    _, answer = post_audio(http, corpus["es, espeak"].wav, model="bundled-tiny.en", word_timestamps="false")
    assert answer["language_probability"] is None
    assert any("English only" in warning for warning in answer["warnings"]), answer
    _, confirmed = post_audio(http, corpus["english, espeak"].wav, model="bundled-tiny.en", language="en")
    assert confirmed["warnings"] == [] and "next year" in confirmed["text"]


def test_spanish_is_transcribed_as_spanish_and_a_chord_gives_no_words_or_a_warning(http, corpus):
    _, spanish = post_audio(http, corpus["es, espeak"].wav, word_timestamps="false")
    assert spanish["language"] == "es" and spanish["language_probability"] > 0.5 and "presupuesto" in spanish["text"]
    _, chord = post_audio(http, corpus["a chord with tremolo"].wav, word_timestamps="false")
    assert not chord["text"].strip() or chord["warnings"], chord


def test_unchecked_decoding_is_still_there_when_asked(http, corpus):
    """temperature=[0] and no_speech_threshold=1: one beam-search pass, nothing skipped (as before the checks)."""
    form = {"temperature[]": "0", "no_speech_threshold": "1", "word_timestamps": "false"}
    _, chord = post_audio(http, corpus["a chord with tremolo"].wav, **form)
    assert all(s["avg_logprob"] is not None for s in chord["segments"])


def test_verbose_json_says_how_each_segment_was_decoded(sdk, corpus):
    with corpus["english, espeak"].wav.open("rb") as audio:
        result = sdk.audio.transcriptions.create(model="whisper-1", file=audio, response_format="verbose_json")
    body = result.model_dump()
    assert body["language"] == "english" and body["language_probability"] > 0.5 and body["warnings"] == []
    assert all(s["temperature"] == 0.0 and 0 < s["compression_ratio"] < 2.4 for s in body["segments"])
