"""/v1/realtime?intent=transcription: live transcription over a WebSocket, in OpenAI's realtime protocol.

The route does the connection's part — the API key (a Bearer header; or, for browsers, which
cannot set headers, the subprotocol ``openai-insecure-api-key.<key>`` or ``?api_key=``), the
session limit, message size, idle time, shutdown — and hands each JSON event to a
``LiveSession`` (``app/live/session.py``), which sends its events back through here. A
refusal is an ``error`` event followed by a close, so browsers (which see no handshake
status) can read why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import MutableMapping
from functools import partial
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from app.errors import NotReady, ServiceError
from app.http.auth import Tenant
from app.live.protocol import ProtocolError, error, parse_client_event
from app.live.session import LiveLimits, LiveSession
from app.live.sessions import LiveSessions

logger = logging.getLogger(__name__)

router = APIRouter()

_KEY_PROTOCOL = "openai-insecure-api-key."
_POLL_S = 0.25  # how often a quiet session looks at the clock and at a shutdown
_POLICY, _TRY_AGAIN_LATER, _SERVICE_RESTART, _NORMAL = 1008, 1013, 1012, 1000


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    state = websocket.app.state
    settings, live = state.settings, state.live
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    await websocket.accept(subprotocol=_chosen_subprotocol(offered))
    send = _sender(websocket)
    try:
        tenant = state.api_keys.tenant_of(_authorization(websocket, offered))
    except ServiceError as exc:
        await _refuse(websocket, send, exc.message, exc.code, _POLICY)
        return
    intent = websocket.query_params.get("intent", "transcription")
    if intent != "transcription":
        message = f"intent={intent} is not served here: this server transcribes (intent=transcription)."
        await _refuse(websocket, send, message, "unsupported_intent", _POLICY)
        return
    if settings.max_realtime_sessions == 0:
        await _refuse(websocket, send, "Live transcription is off (MAX_REALTIME_SESSIONS=0).", "realtime_off", _POLICY)
        return
    try:
        state.transcriber.pipeline()
    except NotReady as exc:
        await _refuse(websocket, send, exc.message, exc.code, _TRY_AGAIN_LATER, kind="server_error")
        return
    if state.gate.draining:
        message = "The server is shutting down; connect to another instance."
        await _refuse(websocket, send, message, "server_shutting_down", _SERVICE_RESTART, kind="server_error")
        return
    if not live.enter():
        message = f"This server has {live.limit} live sessions open, its limit (MAX_REALTIME_SESSIONS); retry shortly."
        await _refuse(websocket, send, message, "too_many_sessions", _TRY_AGAIN_LATER, kind="server_error")
        return
    try:
        await _serve(websocket, send, live, state, tenant)
    finally:
        live.leave()


async def _serve(websocket: WebSocket, send: Any, live: LiveSessions, state: Any, tenant: Tenant) -> None:
    settings = state.settings
    limits = LiveLimits(settings.realtime_max_buffer_s, settings.realtime_partial_interval_ms / 1000)
    stored_voices = partial(state.jobs.stored_voices, tenant.identity)  # the tenant's voice book
    session = LiveSession(state.transcriber, limits, send, live.threads, stored_voices)
    heard = time.monotonic()
    try:
        await session.start()
        while True:
            if state.gate.draining:
                reason = "The server is shutting down; reconnect to another instance."
                await session.finish(reason, within_s=state.gate.grace_left())
                await _close(websocket, _SERVICE_RESTART, "server shutting down")
                return
            if session.owes_events:  # turns still being transcribed: the client is waiting, not idle
                heard = time.monotonic()
            if time.monotonic() - heard > settings.realtime_idle_timeout_s:
                idle = f"Nothing was received for {settings.realtime_idle_timeout_s:.0f} s; the session is closed."
                await send(error(idle, code="idle_timeout"))
                await _close(websocket, _NORMAL, "idle timeout")
                return
            try:
                received = await asyncio.wait_for(websocket.receive(), timeout=_POLL_S)
            except TimeoutError:
                continue
            if received["type"] == "websocket.disconnect":
                return
            heard = time.monotonic()
            await _dispatch(session, send, received, settings.realtime_max_message_mb)
    except WebSocketDisconnect:
        return
    finally:
        await session.close()


async def _dispatch(session: LiveSession, send: Any, message: MutableMapping[str, Any], limit_mb: float) -> None:
    text = message.get("text")
    if text is None:
        await send(error("Binary messages are not part of the protocol: send JSON events as text.", code="binary"))
        return
    if len(text) > limit_mb * 1024 * 1024:  # events are JSON text: a character is a byte, bar a prompt's
        await send(error(f"A message may be at most {limit_mb:g} MiB (REALTIME_MAX_MESSAGE_MB).", code="too_large"))
        return
    try:
        parsed = parse_client_event(text)
    except ProtocolError as exc:
        await send(error(exc.message, code=exc.code))
        return
    try:
        await session.handle(parsed)
    except Exception:
        logger.exception("A live session failed on a %r event", parsed.get("type"))
        await send(error("The server failed to handle this event.", code="internal_error", kind="server_error"))


def _sender(websocket: WebSocket) -> Any:
    lock = asyncio.Lock()  # events from the session's decodes and from the receive loop interleave

    async def send(event: dict[str, Any]) -> None:
        async with lock:
            if websocket.application_state is not WebSocketState.CONNECTED:
                return
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await websocket.send_text(json.dumps(event, ensure_ascii=False))

    return send


def _chosen_subprotocol(offered: list[str]) -> str | None:
    # Browsers fail a handshake that names none of the subprotocols they offered; never echo a key.
    plain = [p for p in offered if not p.startswith(_KEY_PROTOCOL)]
    return "realtime" if "realtime" in plain else (plain[0] if plain else None)


def _authorization(websocket: WebSocket, offered: list[str]) -> str:
    header = websocket.headers.get("authorization")
    if header:
        return header
    for protocol in offered:
        if protocol.startswith(_KEY_PROTOCOL):
            return "Bearer " + protocol[len(_KEY_PROTOCOL) :]
    key = websocket.query_params.get("api_key")
    return f"Bearer {key}" if key else ""


async def _refuse(websocket: WebSocket, send: Any, message: str, code: str, close_code: int, **details: Any) -> None:
    await send(error(message, code=code, **details))
    await _close(websocket, close_code, code)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await websocket.close(code, reason)
