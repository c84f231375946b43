import pytest
from pydantic import ValidationError

from app.wire.forms import TranscribeParams


def test_defaults_mean_auto_everything():
    params = TranscribeParams()
    assert params.language is None
    assert params.task == "transcribe"
    assert params.diarize is None
    assert params.output == "json"


@pytest.mark.parametrize("value", ["auto", "AUTO", "", "  "])
def test_auto_language_means_detect(value):
    assert TranscribeParams(language=value).language is None


def test_language_codes_are_normalised():
    assert TranscribeParams(language=" DE ").language == "de"


@pytest.mark.parametrize("value", ["xx", "english", "en-US"])
def test_unknown_language_is_refused(value):
    with pytest.raises(ValidationError, match="unknown language code"):
        TranscribeParams(language=value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_speakers": 3, "max_speakers": 2}, "greater than max_speakers"),
        ({"num_speakers": 5, "max_speakers": 2}, "outside"),
        ({"num_speakers": 1, "min_speakers": 2}, "outside"),
        ({"diarize": False, "num_speakers": 2}, "diarize is false"),
        ({"num_speakers": 0}, "greater than or equal to 1"),
        ({"output": "docx"}, "Input should be"),
        ({"task": "summarise"}, "Input should be"),
        ({"batch_size": 0}, "greater than or equal to 1"),
    ],
)
def test_contradictory_or_invalid_parameters(fields, message):
    with pytest.raises(ValidationError, match=message):
        TranscribeParams(**fields)


def test_consistent_hints_pass():
    params = TranscribeParams(num_speakers=2, min_speakers=1, max_speakers=3)
    assert params.hints.given


def test_blank_prompt_is_none():
    assert TranscribeParams(initial_prompt="   ").initial_prompt is None
