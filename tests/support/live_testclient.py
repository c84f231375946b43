"""A live session through Starlette's test client (the api tier): open it, send audio, read events."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.testclient import TestClient, WebSocketTestSession

URL = "/v1/realtime?intent=transcription"


@contextmanager
def live_session(client: TestClient, url: str = URL, **kwargs: Any) -> Iterator[WebSocketTestSession]:
    """A session, its ``session.created`` read."""
    with client.websocket_connect(url, **kwargs) as ws:
        created = ws.receive_json()
        assert created["type"] == "session.created", created
        yield ws


def append_pcm(ws: WebSocketTestSession, pcm: bytes, chunk_bytes: int = 9600) -> None:
    """``pcm`` as ``input_audio_buffer.append`` events of ``chunk_bytes`` each."""
    for at in range(0, len(pcm), chunk_bytes):
        ws.send_json(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[at : at + chunk_bytes]).decode()}
        )


def events_until(ws: WebSocketTestSession, kind: str, limit: int = 500) -> list[dict[str, Any]]:
    """The events up to the first of type ``kind``, that one included."""
    seen = []
    for _ in range(limit):
        event = ws.receive_json()
        seen.append(event)
        if event["type"] == kind:
            return seen
    raise AssertionError(f"no {kind} in {[e['type'] for e in seen]}")
