"""Refuse request bodies over the configured size with the service's JSON 413.

A declared ``Content-Length`` over the limit is answered before a byte of the body is read;
a chunked body is counted as it streams in and stopped as soon as it passes the limit, so an
oversize upload is never spooled whole. (Starlette's own limiter answers in plain text.)
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.error_handlers import error_response


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, limit_mb: float) -> None:
        self.app = app
        self.max_bytes = max_bytes  # the upload limit plus room for the multipart framing
        self.limit_mb = limit_mb

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(scope["path"], 413, "payload_too_large", self._message())
            await response(scope, receive, send)
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # Raised inside the route's body parsing; FastAPI re-raises HTTPExceptions
                # as they are, so the app's handler turns it into the JSON error.
                raise HTTPException(status_code=413, detail=self._message())
            return message

        await self.app(scope, counting_receive, send)

    def _message(self) -> str:
        return f"The upload exceeds the limit of {self.limit_mb:g} MiB (MAX_UPLOAD_MB)."
