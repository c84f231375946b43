"""API keys: ``Authorization: Bearer <key>`` on the routes that do work.

Checked as a dependency, so a request without a valid key is refused (401) before its body
is read or anything is admitted. Every configured key is compared in constant time, and a
key is never logged, echoed in an error, or shown by ``/health``.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from app.errors import ServiceError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="transcription-service"'}


class Unauthorized(ServiceError):
    status_code = 401
    code = "invalid_api_key"


def _keys(request: Request) -> tuple[bytes, ...]:
    keys: tuple[bytes, ...] = request.app.state.api_keys
    return keys


def require_api_key(request: Request, keys: Annotated[tuple[bytes, ...], Depends(_keys)]) -> None:
    if not keys:
        return
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthorized("An API key is required: send `Authorization: Bearer <key>`.", headers=_CHALLENGE)
    offered = credential.strip().encode()
    matched = False
    for key in keys:  # every key, every time: the time taken says nothing about which one is close
        matched |= hmac.compare_digest(offered, key)
    if not matched:
        raise Unauthorized("The API key is not valid.", headers=_CHALLENGE)


def require_api_key_for_health(request: Request, keys: Annotated[tuple[bytes, ...], Depends(_keys)]) -> None:
    if request.app.state.settings.health_requires_key:
        require_api_key(request, keys)


ApiKeyRequired = Depends(require_api_key)
