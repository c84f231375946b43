"""Schemathesis hooks for the contract test (tests/e2e/test_openapi_contract.py).

Two things the OpenAPI document cannot say, told to the fuzzer so that "schema-valid requests
are accepted" is checked for real:
- the file part is audio: schema-valid files are real speech, slices of the pyannote sample;
- the rules across fields, each a clear 422 by design (app/wire/schemas.py, app/wire/openai_schemas.py,
  TranscriptionPipeline.resolve) and tested on their own: requests that break one are left out
  of the positive cases.
"""

from __future__ import annotations

import io
import os
import wave
from typing import Any

import numpy as np
import schemathesis
from hypothesis import strategies as st

_MAX_BATCH_SIZE = int(os.environ.get("MAX_BATCH_SIZE", "64"))  # the server under test's


def _speech_clips() -> list[bytes]:
    from app.serving.warmup import sample_speech

    speech = sample_speech()
    clips = []
    # 2–3 s each: long enough to be a voice book's clip (POST /v1/speakers) as well.
    for start_s, seconds in ((6.5, 2.5), (9.0, 2.0), (15.0, 2.2), (21.0, 2.5)):
        samples = speech[int(start_s * 16000) : int((start_s + seconds) * 16000)]
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes((np.clip(samples, -1, 1 - 1 / 32768) * 32768).astype("<i2").tobytes())
        clips.append(buffer.getvalue())
    return clips


schemathesis.openapi.media_type("audio/wav", st.sampled_from(_speech_clips()))


def _count(value: object) -> int | None:
    """The value if it is a speaker count's type (a negative case may send anything)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def contradictory(body: dict[str, Any], translation: bool = False) -> bool:
    """A form that breaks a rule across fields (or this server's configuration)."""
    low, high, exact = (_count(body.get(name)) for name in ("min_speakers", "max_speakers", "num_speakers"))
    hints = any(value is not None for value in (low, high, exact))
    if low is not None and high is not None and low > high:
        return True
    if exact is not None and ((low is not None and exact < low) or (high is not None and exact > high)):
        return True
    if body.get("diarize") is False and (hints or body.get("response_format") == "diarized_json"):
        return True
    if body.get("word_timestamps") is False and (body.get("diarize") is True or hints):
        return True
    if "timestamp_granularities" in body and body.get("response_format", "json") != "verbose_json":
        return True
    if (batch := _count(body.get("batch_size"))) is not None and batch > _MAX_BATCH_SIZE:
        return True
    onset, offset = body.get("vad_onset"), body.get("vad_offset")
    if isinstance(offset, float | int) and offset > (onset if isinstance(onset, float | int) else 0.5):
        return True
    streaming = body.get("stream") is True
    if body.get("include") and not streaming:
        return True
    if streaming and (translation or body.get("response_format") in ("verbose_json", "srt", "vtt")):
        return True
    if isinstance(body.get("name"), str) and not _plain_name(body["name"]):
        return True  # a voice's name (POST /v1/speakers) follows the names rule (tests/api/test_voice_book_api.py)
    if body.get("known_speaker_names") or body.get("known_speaker_references"):
        return True  # a name per reference, and each reference 2–10 s of real speech: tested on their own
    return body.get("callback_url") is not None  # the server under test sends no webhooks


def _plain_name(value: str) -> bool:
    from app.engine.speakers.names import InvalidName, speaker_name

    try:
        speaker_name(value)
    except InvalidName:
        return False
    return True


def decodes_many_times(body: dict[str, Any]) -> bool:
    """Checks that fail every window (a log-probability threshold near 0, a compression threshold
    near 1) or a schedule of several temperatures: each window may then be decoded up to six
    times, to the token limit when sampling. Legitimate, and costly on a 2-core machine: what
    the checks cost and catch is bench/invented_text.py's and tests/unit/test_fallback.py's."""
    log_prob, ratio, schedule = (
        body.get(n) for n in ("log_prob_threshold", "compression_ratio_threshold", "temperature")
    )
    if isinstance(log_prob, float | int) and log_prob > -0.5:
        return True
    if isinstance(ratio, float | int) and ratio < 1.8:
        return True
    return isinstance(schedule, list) and len(schedule) > 2


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    translation = case.operation.path.endswith("/translations")
    body = case.body
    return not (isinstance(body, dict) and (contradictory(body, translation) or decodes_many_times(body)))
