"""Play a recording into /v1/realtime as a microphone would, and keep every event with its arrival time.

Audio goes out in ``chunk_ms`` pieces paced at ``speed`` × real time (1.0: a live speaker),
then ``tail_s`` of silence so the last turn can end. Shared by the e2e tests and
``bench/realtime_latency.py``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"


def sdk_events(connection: Any, timeout_s: float, what: str) -> Iterator[Any]:
    """An openai SDK realtime connection's events, for at most ``timeout_s``: past it the socket
    is closed and the test fails saying what it waited for (the SDK's own iterator never ends)."""
    expired = threading.Event()
    timer = threading.Timer(timeout_s, lambda: (expired.set(), connection.close()))
    timer.start()
    try:
        for event in connection:
            if expired.is_set():
                break
            yield event
    finally:
        timer.cancel()
    if expired.is_set():
        raise AssertionError(f"{what} did not come within {timeout_s:g} s")


def pcm16(path: Path, rate: int = 24000) -> bytes:
    """A 16 kHz mono WAV as mono PCM16 at ``rate`` (OpenAI's realtime audio is 24 kHz).

    Read without ffmpeg or PyAV, so it runs where only numpy and scipy are installed."""
    from math import gcd

    from scipy.signal import resample_poly

    from app.engine.audio import SAMPLE_RATE, read_pcm16_wav

    audio = read_pcm16_wav(path)
    if rate != SAMPLE_RATE:
        divisor = gcd(rate, SAMPLE_RATE)
        audio = resample_poly(audio, rate // divisor, SAMPLE_RATE // divisor)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


@dataclass
class LiveRun:
    speed: float
    rate: int
    started: float = 0.0  # monotonic time the first audio went out
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (seconds since started, event)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [event for _, event in self.events if event["type"] == kind]

    def sent_at(self, audio_ms: float) -> float:
        """When the audio at ``audio_ms`` of the recording went out (seconds since started)."""
        return audio_ms / 1000 / self.speed

    def arrival(self, kind: str, item_id: str) -> float | None:
        return next((t for t, e in self.events if e["type"] == kind and e.get("item_id") == item_id), None)

    @property
    def transcript(self) -> str:
        return " ".join(e["transcript"].strip() for e in self.of_type(COMPLETED) if e["transcript"].strip())


async def play(
    url: str,
    pcm: bytes,
    *,
    session: dict[str, Any] | None = None,
    rate: int = 24000,
    speed: float = 1.0,
    chunk_ms: int = 100,
    tail_s: float = 1.5,
    settle_s: float = 30.0,
    headers: dict[str, str] | None = None,
) -> LiveRun:
    """One session: update it, play ``pcm``, then wait until every committed turn is completed."""
    from websockets.asyncio.client import connect

    run = LiveRun(speed=speed, rate=rate)
    chunk = rate * 2 * chunk_ms // 1000
    audio = pcm + bytes(int(tail_s * rate) * 2)
    async with connect(url, additional_headers=headers or {}, max_size=None) as socket:
        first = json.loads(await socket.recv())
        assert first["type"] == "session.created", first
        if session is not None:
            await socket.send(json.dumps({"type": "session.update", "session": session}))
            while json.loads(await socket.recv())["type"] != "session.updated":
                pass

        async def listen() -> None:
            async for message in socket:
                run.events.append((time.monotonic() - run.started, json.loads(message)))

        listener = asyncio.ensure_future(listen())
        run.started = time.monotonic()
        for index, at in enumerate(range(0, len(audio), chunk)):
            piece = base64.b64encode(audio[at : at + chunk]).decode()
            await socket.send(json.dumps({"type": "input_audio_buffer.append", "audio": piece}))
            await asyncio.sleep(max(0.0, run.started + (index + 1) * chunk_ms / 1000 / speed - time.monotonic()))
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            done = {e.get("item_id") for e in run.of_type(COMPLETED)}
            done |= {e.get("item_id") for e in run.of_type("conversation.item.input_audio_transcription.failed")}
            committed = {e["item_id"] for e in run.of_type("input_audio_buffer.committed")}
            open_turns = len(run.of_type("input_audio_buffer.speech_started")) > len(committed)
            if committed <= done and not open_turns:
                break
            await asyncio.sleep(0.05)
        listener.cancel()
    return run
