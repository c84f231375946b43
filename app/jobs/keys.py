"""The digests jobs are scoped and matched by.

- **tenant id**: an HMAC of the tenant's identity (app/http/auth.py) under the store's own salt, so
  a row never holds a key, and the ids of one key differ between stores. Without API_KEYS
  there is one tenant, id "".
- **request key**: the audio and the options as the client asked; a replayed Idempotency-Key
  must bring the same one.
- **result key**: the audio, the options as resolved, the fingerprint of the models that run
  them (app/serving/fingerprint.py) and the cache's scope (the tenant, or everyone with
  JOBS_SHARED_CACHE): equal keys, equal results.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict
from typing import Any

from app.engine.options import ResolvedOptions

PUBLIC_TENANT = ""


def tenant_id(salt: str, identity: str) -> str:
    if not identity:
        return PUBLIC_TENANT
    return hmac.new(salt.encode(), identity.encode(), hashlib.sha256).hexdigest()[:32]


def request_key(audio_sha256: str, stored_options: dict[str, Any]) -> str:
    return _digest({"audio": audio_sha256, "options": stored_options})


def result_key(audio_sha256: str, resolved: ResolvedOptions, fingerprint: str, scope: str) -> str:
    return _digest({"audio": audio_sha256, "options": asdict(resolved), "models": fingerprint, "scope": scope})


def _digest(value: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def cache_scope(tenant: str, *, shared: bool) -> str:
    """Whose results a job may reuse: its tenant's, or with JOBS_SHARED_CACHE everyone's."""
    return "shared" if shared else f"tenant:{tenant}"
