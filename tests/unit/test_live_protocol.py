"""Live sessions' rules as pure functions: the partials' stable prefix, and session.update into settings."""

from __future__ import annotations

import pytest

from app.live.agreement import StablePrefix
from app.live.protocol import LOGPROBS, LiveConfig, ProtocolError, updated
from app.live.turns import ServerVad


def test_words_are_shown_once_two_decodes_agree_and_never_taken_back():
    agreement = StablePrefix()
    assert agreement.update("Hello") == ""  # nothing to agree with yet
    assert agreement.update("Hello there, how") == "Hello"
    assert agreement.update("Hello, there, how are") == " there, how"  # case and punctuation aside
    assert agreement.update("Yellow there") == ""  # a decode that rewrites what was shown shows nothing
    assert agreement.update("Hello there how are you") == ""  # agrees only with the last decode's two words
    assert agreement.update("Hello there how are you doing") == " are you"
    assert agreement.shown == ["Hello", "there,", "how", "are", "you"]


def test_one_decode_shows_its_words_but_the_last_three():
    stable = StablePrefix()
    assert stable.update("so I was thinking we could go") == "so I was thinking"
    # Agreed with the decode before up to "go", which is also three words from the end now.
    assert stable.update("so I was thinking we could go to the") == " we could go"
    assert stable.update("so I was sinking we could go to the beach on") == ""  # never taken back
    assert stable.shown == ["so", "I", "was", "thinking", "we", "could", "go"]
    assert StablePrefix(held_words=2).update("one two three") == "one"


def test_the_final_text_completes_what_was_shown_or_corrects_it():
    shown = StablePrefix()
    shown.update("It is raining")
    shown.update("It is raining in")
    assert shown.finish("It is raining in Spain.") == " in Spain."
    wrong = StablePrefix()
    wrong.update("It is raining")
    wrong.update("It is raining")
    assert wrong.finish("It was raining.") is None  # the completed event's transcript is the truth
    nothing = StablePrefix()
    assert nothing.finish("Hi.") == "Hi."


def test_session_update_changes_only_what_it_names():
    config = updated(
        LiveConfig(),
        {
            "type": "transcription",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}, "transcription": {"language": "de"}}},
            "include": [LOGPROBS],
        },
    )
    assert (config.rate, config.language, config.logprobs) == (16000, "de", True)
    assert config.turn_detection == ServerVad() and config.prompt is None
    config = updated(config, {"audio": {"input": {"transcription": {"prompt": "Glossary", "keywords": ["Grafana"]}}}})
    assert (config.language, config.prompt, config.keywords) == ("de", "Glossary", ("Grafana",))
    manual = updated(config, {"audio": {"input": {"turn_detection": None}}})
    assert manual.turn_detection is None
    tuned = updated(
        manual, {"audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 300}}}}
    )
    assert tuned.turn_detection == ServerVad(silence_duration_ms=300)


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"audio": {"input": {"format": {"type": "audio/pcm", "rate": 44100}}}}, "session.audio.input.format.rate"),
        ({"audio": {"input": {"format": {"type": "audio/pcmu"}}}}, "session.audio.input.format.type"),
        ({"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}}, "session.audio"),
        ({"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}, "session.audio"),
        ({"type": "realtime"}, "session.type"),
    ],
)
def test_what_cannot_be_served_is_refused_with_where(session, param):
    with pytest.raises(ProtocolError) as raised:
        updated(LiveConfig(), session)
    assert raised.value.param is not None and raised.value.param.startswith(param)
    assert raised.value.code == "invalid_value"
