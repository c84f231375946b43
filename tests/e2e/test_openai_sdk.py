"""The OpenAI audio API as its users reach it: the real ``openai`` SDK against the running server.

Everything goes through the SDK (its multipart encoding, its parsing, its exceptions), on
the bundled multilingual base and the real two-speaker sample call.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.scoring import read_stm_text, word_error_rate
from tests.support.server import RunningServer, offline_cpu_env
from tests.support.server_fixtures import server_or_fail

SAMPLE_SECONDS = 30.0
_SRT_TIMING = re.compile(r"^\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}$", re.MULTILINE)
_VTT_TIMING = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d{3} --> \d{2}:\d{2}:\d{2}\.\d{3}$", re.MULTILINE)


@pytest.fixture(scope="module")
def verbose(sdk: openai.OpenAI, sample_wav: Path) -> openai.types.audio.TranscriptionVerbose:
    with sample_wav.open("rb") as audio:
        return sdk.audio.transcriptions.create(
            model="whisper-1",
            file=audio,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )


def test_verbose_json_has_timed_words_and_segments(verbose, sample_stm):
    assert verbose.language == "english"
    assert verbose.duration == pytest.approx(SAMPLE_SECONDS, abs=0.01)
    assert word_error_rate(read_stm_text(sample_stm), verbose.text) <= 0.30
    assert verbose.segments and verbose.words
    assert len(verbose.words) >= 50
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts)
    assert all(0.0 <= w.start <= w.end <= SAMPLE_SECONDS and w.word.strip() for w in verbose.words)
    for index, segment in enumerate(verbose.segments):
        assert segment.id == index
        assert 0.0 <= segment.start <= segment.end <= SAMPLE_SECONDS
        assert segment.tokens and segment.temperature == 0.0
        assert segment.avg_logprob < 0.0 and 0.0 <= segment.no_speech_prob <= 1.0
        assert segment.compression_ratio > 0.0
    assert " ".join(s.text for s in verbose.segments) == verbose.text
    assert verbose.usage is not None and verbose.usage.seconds == pytest.approx(SAMPLE_SECONDS, abs=0.01)


def test_json_is_the_text(sdk, sample_wav, verbose):
    with sample_wav.open("rb") as audio:
        result = sdk.audio.transcriptions.create(model="whisper-1", file=audio)
    assert isinstance(result, openai.types.audio.Transcription)
    # Plain json skips word times and speakers, so segments may split differently; the words agree.
    assert word_error_rate(verbose.text, result.text) <= 0.05


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_text_and_subtitles_come_back_as_strings(sdk, sample_wav, server, fmt):
    with sample_wav.open("rb") as audio:
        result = sdk.audio.transcriptions.create(
            model=server.health["model"], file=audio, response_format=fmt, language="en"
        )
    assert isinstance(result, str)
    if fmt == "text":
        assert len(result.split()) >= 50 and result.endswith("\n")
    elif fmt == "srt":
        assert result.startswith("1\n") and len(_SRT_TIMING.findall(result)) >= 3
    else:
        assert result.startswith("WEBVTT\n") and len(_VTT_TIMING.findall(result)) >= 3


def test_diarized_json_labels_two_speakers(sdk, sample_wav):
    with sample_wav.open("rb") as audio:
        result = sdk.audio.transcriptions.create(model="whisper-1", file=audio, response_format="diarized_json")
    assert isinstance(result, openai.types.audio.TranscriptionDiarized)
    assert {s.speaker for s in result.segments} >= {"SPEAKER_00", "SPEAKER_01"}
    assert all(s.type == "transcript.text.segment" and s.start <= s.end for s in result.segments)
    assert [s.id for s in result.segments] == [f"seg_{i}" for i in range(len(result.segments))]


def test_speaker_extensions_go_as_extra_fields(sdk, sample_wav):
    with sample_wav.open("rb") as audio:
        result = sdk.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="diarized_json", extra_body={"num_speakers": 1}
        )
    assert {s.speaker for s in result.segments} == {"SPEAKER_00"}


def test_translation(sdk, sample_wav):
    with sample_wav.open("rb") as audio:
        result = sdk.audio.translations.create(model="whisper-1", file=audio, response_format="verbose_json")
    assert isinstance(result, openai.types.audio.TranslationVerbose)
    assert result.segments and len(result.text.split()) >= 50
    with sample_wav.open("rb") as audio:
        plain = sdk.audio.translations.create(model="whisper-1", file=audio)
    assert isinstance(plain, openai.types.audio.Translation) and plain.text


def test_models_list_the_loaded_model_and_the_alias(sdk, server):
    ids = [m.id for m in sdk.models.list()]
    assert ids == [server.health["model"], "bundled-tiny.en", "whisper-1"]
    assert sdk.models.retrieve("whisper-1").id == "whisper-1"
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.models.retrieve("gpt-4o-transcribe")
    assert raised.value.code == "model_not_found"


def test_an_unknown_model_is_not_found(sdk, sample_wav):
    with sample_wav.open("rb") as audio, pytest.raises(openai.NotFoundError) as raised:
        sdk.audio.transcriptions.create(model="gpt-4o-transcribe", file=audio)
    assert raised.value.code == "model_not_found" and raised.value.param == "model"


def test_not_audio_is_a_bad_request(sdk, tmp_path):
    fake = tmp_path / "notes.mp3"
    fake.write_text("this is not audio, whatever its name says\n" * 100)
    with fake.open("rb") as f, pytest.raises(openai.BadRequestError) as raised:
        sdk.audio.transcriptions.create(model="whisper-1", file=f)
    assert raised.value.status_code == 400  # OpenAI's status for it; /transcribe says 415
    assert raised.value.code == "unsupported_media"
    assert raised.value.type == "invalid_request_error"


def test_contradictory_fields_are_unprocessable(sdk, sample_wav):
    with sample_wav.open("rb") as audio, pytest.raises(openai.UnprocessableEntityError) as raised:
        sdk.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="text", timestamp_granularities=["word"]
        )
    assert raised.value.param == "timestamp_granularities"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A second, lean server (tiny.en, no aligner, no diarizer) with API keys from a mounted file."""
    root = tmp_path_factory.mktemp("keyed")
    keys = root / "api-keys"
    keys.write_text("sk-test-0123456789abcdef\n")
    env = offline_cpu_env(
        root,
        WHISPER_MODEL="bundled-tiny.en",
        ENABLE_ALIGNMENT="false",
        ENABLE_DIARIZATION="false",
        WARMUP="false",
        API_KEYS=str(keys),
    )
    with server_or_fail(env, root / "server.log", timeout_s=300) as running:
        yield running


def test_keys_are_required_and_checked(keyed_server, sample_wav):
    base_url = f"{keyed_server.url}/v1"
    with openai.OpenAI(base_url=base_url, api_key="sk-wrong", max_retries=0) as wrong:
        with sample_wav.open("rb") as audio, pytest.raises(openai.AuthenticationError) as raised:
            wrong.audio.transcriptions.create(model="whisper-1", file=audio)
        assert raised.value.code == "invalid_api_key" and "sk-wrong" not in raised.value.message
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
    with openai.OpenAI(base_url=base_url, api_key="sk-test-0123456789abcdef", max_retries=0, timeout=300) as right:
        with sample_wav.open("rb") as audio:
            result = right.audio.transcriptions.create(model="bundled-tiny.en", file=audio, response_format="text")
        assert len(result.split()) >= 50
        with sample_wav.open("rb") as audio, pytest.raises(openai.UnprocessableEntityError) as raised:
            right.audio.translations.create(model="whisper-1", file=audio)
        assert "English-only" in raised.value.message
