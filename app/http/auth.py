"""API keys and tenants: ``Authorization: Bearer <key>`` on the routes that do work.

Checked as a dependency, so a request without a valid key is refused (401) before its body
is read or anything is admitted. Every configured key is compared in constant time, and a
key is never logged, echoed in an error, or shown by ``/health``.

A valid key names its **tenant**: what the job routes scope by (a job, its Idempotency-Key
and its cached result belong to the tenant that submitted it) and what logs and ``/metrics``
call it by — its name from ``API_KEYS`` (``name:key``) or ``key-N``, never the key.
Without ``API_KEYS`` every request is the one tenant ``PUBLIC``.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.errors import ServiceError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="transcription-service"'}


class Unauthorized(ServiceError):
    status_code = 401
    code = "invalid_api_key"


@dataclass(frozen=True)
class Tenant:
    """Who a request is. ``identity`` is what tenant ids derive from: the name of a named key
    (so a rotated key keeps its jobs), the key itself for a bare one; never shown."""

    name: str
    identity: str = field(repr=False)


PUBLIC = Tenant("public", "")


class ApiKeys:
    """The configured keys, each with its tenant."""

    def __init__(self, settings: Settings) -> None:
        self._entries = tuple(
            (entry.key.encode(), Tenant(entry.name, f"name:{entry.name}" if entry.named else f"key:{entry.key}"))
            for entry in settings.api_key_entries()
        )

    def tenant_of(self, authorization: str) -> Tenant:
        """The tenant whose key the ``Authorization`` header carries, or Unauthorized."""
        if not self._entries:
            return PUBLIC
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise Unauthorized("An API key is required: send `Authorization: Bearer <key>`.", headers=_CHALLENGE)
        offered = credential.strip().encode()
        found: Tenant | None = None
        for key, tenant in self._entries:  # every key, every time: the time taken says nothing about which is close
            if hmac.compare_digest(offered, key):
                found = tenant
        if found is None:
            raise Unauthorized("The API key is not valid.", headers=_CHALLENGE)
        return found


def _keys(request: Request) -> ApiKeys:
    keys: ApiKeys = request.app.state.api_keys
    return keys


def require_api_key(request: Request, keys: Annotated[ApiKeys, Depends(_keys)]) -> Tenant:
    """The request's tenant; kept on ``request.state`` for the logs and /metrics."""
    tenant = keys.tenant_of(request.headers.get("authorization", ""))
    request.state.tenant = tenant.name
    return tenant


def require_api_key_for_health(request: Request, keys: Annotated[ApiKeys, Depends(_keys)]) -> None:
    if request.app.state.settings.health_requires_key:
        require_api_key(request, keys)


ApiKeyRequired = Depends(require_api_key)
CurrentTenant = Annotated[Tenant, Depends(require_api_key)]
