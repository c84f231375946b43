"""A transcription that answers while it works: its text as decoded, then the whole transcript.

The pipeline runs in the threadpool and hands each window's text to a ``TextFeed``, which
carries it to the event loop. ``TranscriptStream`` owns everything the request holds
(admission slot, uploaded file, the work) until it is closed, and ``EventStreamResponse``
closes it however the response ends: finished, failed, or the client gone — whose work is
then cancelled at its next batch boundary, as for any request whose client leaves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.control.cancellation import CancelToken
from app.control.progress import Progress
from app.transcript import TextPiece, Transcript

logger = logging.getLogger(__name__)

_KEEP_ALIVE_S = 10.0


class TextFeed:
    """The pipeline's listener: pieces of text from its thread into an asyncio queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, logprobs: bool) -> None:
        self.logprobs = logprobs
        self._loop = loop
        self.pieces: asyncio.Queue[TextPiece] = asyncio.Queue()  # at most one per Whisper window
        self.started: asyncio.Future[None] = loop.create_future()  # the audio decoded; the pipeline runs
        self.progress = _Started(self._signal_started)

    def __call__(self, piece: TextPiece) -> None:
        self._loop.call_soon_threadsafe(self.pieces.put_nowait, piece)

    def _signal_started(self) -> None:
        self._loop.call_soon_threadsafe(_settle, self.started)


class _Started(Progress):
    """Progress that also says when the first stage after decoding the audio begins."""

    def __init__(self, signal: Callable[[], None]) -> None:
        super().__init__()
        self._signal = signal

    def enter(self, stage: str) -> None:
        super().enter(stage)
        if stage != "decode":
            self._signal()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class TranscriptStream:
    """Pieces of text as they come, then the transcript; ``aclose`` releases the request."""

    def __init__(
        self, resources: AsyncExitStack, work: asyncio.Future[Transcript], feed: TextFeed, cancel: CancelToken
    ) -> None:
        self._resources, self._work, self._feed, self._cancel = resources, work, feed, cancel

    async def wait_started(self) -> None:
        """Until the pipeline runs; the work's error (a 4xx for a bad file) if it ends first."""
        watched: set[asyncio.Future[Any]] = {self._work, self._feed.started}
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        if not self._feed.started.done():
            self._work.result()

    async def __aiter__(self) -> AsyncIterator[TextPiece | Transcript | None]:
        """Each piece, ``None`` when nothing came for a while (time for a keep-alive), the transcript last.

        Cancelled work (the server draining) raises its ``Cancelled``.
        """
        pieces = self._feed.pieces
        while True:
            waiting = asyncio.ensure_future(pieces.get())
            cancelled = asyncio.ensure_future(self._cancel.until_cancelled())
            watched: set[asyncio.Future[Any]] = {waiting, self._work, cancelled}
            done, _ = await asyncio.wait(watched, timeout=_KEEP_ALIVE_S, return_when=asyncio.FIRST_COMPLETED)
            cancelled.cancel()
            if waiting in done:
                yield waiting.result()
                continue
            waiting.cancel()
            if self._work.done():
                while not pieces.empty():
                    yield pieces.get_nowait()
                yield self._work.result()
                return
            if cancelled in done:
                raise self._cancel.error()
            yield None

    async def aclose(self) -> None:
        if not self._work.done() and not self._cancel.cancelled:
            self._cancel.cancel("the client disconnected")
            logger.info("Client left a streaming transcription: it stops at the next boundary")
        await self._resources.aclose()


class EventStreamResponse(StreamingResponse):
    """Server-sent events that release the request's resources however the response ends."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], Any]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},  # nginx: do not buffer
        )
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._on_close()
