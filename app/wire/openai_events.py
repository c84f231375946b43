"""OpenAI's transcription stream events, as ``stream=true`` sends them (server-sent events).

``transcript.text.delta`` for each Whisper window's text the moment it is decoded, in audio
order; ``transcript.text.segment`` for each speaker segment once speakers are known (only for
``diarized_json``); ``transcript.text.done`` last, with the whole text. The deltas joined are
the done event's text, which is the text the same request gets without streaming. A failure
after the stream began is one ``error`` event in OpenAI's error shape (the SDKs raise it).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from app.transcript import TextPiece, TokenLogprob, Transcript
from app.wire.rendering import openai_diarized, openai_usage

# The formats a stream can end in: json and text stream the same events; diarized_json adds segments.
STREAM_FORMATS = ("json", "text", "diarized_json")


def sse(event: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``event`` as JSON."""
    return b"data: " + json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


KEEP_ALIVE = b": keep-alive\n\n"  # an SSE comment: clients ignore it, proxies see traffic


def delta_event(piece: TextPiece) -> dict[str, Any]:
    # Pieces are joined by a space, as the transcript's text joins its segments.
    delta = piece.text if piece.index == 0 else " " + piece.text
    event: dict[str, Any] = {"type": "transcript.text.delta", "delta": delta}
    if piece.logprobs is not None:
        event["logprobs"] = _logprobs(piece.logprobs)
    return event


def final_events(
    transcript: Transcript, response_format: str, logprobs: list[TokenLogprob] | None
) -> list[dict[str, Any]]:
    """What follows the deltas once the transcript is whole: speaker segments, then done."""
    events: list[dict[str, Any]] = []
    if response_format == "diarized_json":
        events.extend(segment.model_dump() for segment in openai_diarized(transcript).segments)
    done: dict[str, Any] = {
        "type": "transcript.text.done",
        "text": transcript.text,
        "usage": openai_usage(transcript).model_dump(),
    }
    if logprobs is not None:
        done["logprobs"] = _logprobs(logprobs)
    events.append(done)
    return events


def error_event(body: dict[str, Any]) -> dict[str, Any]:
    """An error after the stream began: ``body`` is the error answer's JSON (OpenAI's shape)."""
    return {"type": "error", **body}


def _logprobs(entries: list[TokenLogprob]) -> list[dict[str, Any]]:
    return [asdict(entry) for entry in entries]
