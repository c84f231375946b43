"""The one place that turns any error into an HTTP answer.

``ServiceError``s, FastAPI's validation errors and Starlette's HTTP errors all get one JSON
shape per API: ``{"error": {"code": ..., "message": ...}}`` on the service's own routes, and
OpenAI's ``{"error": {"message", "type", "param", "code"}}`` under ``/v1``, so OpenAI clients
raise their usual exceptions. Status codes are the same on both, but for a file that is not
audio: 415 here, 400 under ``/v1`` as OpenAI answers it. Unexpected exceptions are
logged with their traceback and answered with a generic 500 that carries an ``error_id`` to
find that log line; clients never see a stack trace.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.errors import ServiceError, retry_later
from app.http.access_log import route_of

logger = logging.getLogger(__name__)

OPENAI_PREFIX = "/v1/"


def error_body(
    path: str, status: int, code: str, message: str, *, param: str | None = None, **extra: Any
) -> dict[str, Any]:
    if path.startswith(OPENAI_PREFIX):
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return {"error": {"message": message, "type": kind, "param": param, "code": code, **extra}}
    return {"error": {"code": code, "message": message, **extra}}


def error_response(
    path: str,
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    if status == 415 and path.startswith(OPENAI_PREFIX):
        # OpenAI answers a file it cannot read with 400, and its SDKs raise BadRequestError
        # for it; a 415 would reach their users as an untyped APIStatusError.
        status = 400
    if status == 503 and not any(name.lower() == "retry-after" for name in headers or {}):
        headers = {**(headers or {}), **retry_later()}  # every 503 says when to come back
    body = error_body(path, status, code, message, param=param, **extra)
    return JSONResponse(body, status_code=status, headers=headers)


def _describe_validation_error(exc: RequestValidationError) -> tuple[str, str | None]:
    """The message, and the first field at fault."""
    parts = []
    fields = []
    for err in exc.errors():
        path = [str(p) for p in err.get("loc", ()) if p not in ("body", "query")]
        location = ".".join(path)
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
        if path:
            fields.append(path[0])
    return "; ".join(parts) or "invalid request", (fields[0] if fields else None)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (a path's GET and DELETE are two routes)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "\0"})  # no method matches: path-only matches
        if match is Match.PARTIAL:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(
            request.url.path, exc.status_code, exc.code, exc.message, param=exc.param, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, field = _describe_validation_error(exc)
        return error_response(request.url.path, 422, "invalid_parameter", message, param=field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # Starlette names the first matching route's methods; the path may have more
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return error_response(request.url.path, exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex[:12]
        logger.error("Unhandled error %s on %s %s", error_id, request.method, route_of(request.scope), exc_info=exc)
        message = "The server failed to process this request."
        return error_response(request.url.path, 500, "internal_error", message, error_id=error_id)
