"""What uvicorn's own log lines may show: no health probes, and no secret in a query string or header.

uvicorn writes every request's target, query string included, to its access log, and every
WebSocket handshake's to its error log (``"WebSocket /v1/realtime?api_key=…" [accepted]``); at
``LOG_LEVEL=debug`` the WebSocket library also logs each handshake header there, one
``name: value`` record each. A browser's live session may authenticate with ``?api_key=`` or a
subprotocol (it cannot set headers), and webhooks and proxies put tokens in query strings too:
any query parameter named like a secret, and the value of any header that carries credentials,
is logged as ``[redacted]``, whatever it was and whether or not it was valid.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
# Names of parameters that carry credentials: api_key, apikey, access_token, X-Amz-Signature, sig, password…
_SECRET_NAME = re.compile(r"key|token|secret|passw|pwd|auth|sig|credential", re.IGNORECASE)
_SECRET_HEADERS = frozenset({"cookie", "set-cookie"})  # the rest match _SECRET_NAME (authorization, x-api-key…)
_KEY_SUBPROTOCOL = "openai-insecure-api-key."
_HEADER_FORMATS = frozenset({"< %s: %s", "> %s: %s"})  # the websockets library's handshake lines


def redact_query(target: str) -> str:
    """``target`` (a path with its query) with the values of secret-named parameters replaced."""
    path, question, query = target.partition("?")
    if not question:
        return target
    pairs = []
    for pair in query.split("&"):
        name, equals, _value = pair.partition("=")
        pairs.append(f"{name}={REDACTED}" if equals and _SECRET_NAME.search(unquote_plus(name)) else pair)
    return f"{path}?{'&'.join(pairs)}"


def redact_header(name: str, value: str) -> str:
    """A header's value as it may be logged: credentials replaced, the rest (other subprotocols) kept."""
    lowered = name.lower()
    if lowered == "sec-websocket-protocol":  # browsers send the key as a subprotocol
        offered = (p.strip() for p in value.split(","))
        return ", ".join(f"{_KEY_SUBPROTOCOL}{REDACTED}" if p.startswith(_KEY_SUBPROTOCOL) else p for p in offered)
    return REDACTED if lowered in _SECRET_HEADERS or _SECRET_NAME.search(lowered) else value


class RedactSecrets(logging.Filter):
    """Redacts secrets in a record's arguments: a target's query string (uvicorn logs the target as
    one argument), and a header's value (the WebSocket library logs ``"< %s: %s", name, value``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple):
            return True
        if record.msg in _HEADER_FORMATS and len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], str):
            record.args = (args[0], redact_header(args[0], args[1]))
        elif any(isinstance(a, str) and "?" in a for a in args):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in args)
        return True


def route_of(scope: Mapping[str, Any]) -> str:
    """What a log line may say of a request's path: the route template that answered it, never the
    client's own path (percent-decoded, it may hold a line break)."""
    return getattr(scope.get("route"), "path", None) or "an unmatched path"


class HealthProbes(logging.Filter):
    """Keep health probes (every few seconds, from Docker or a load balancer) out of the access log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (isinstance(args, tuple) and len(args) >= 3 and str(args[2]).startswith("/health"))


def install(logger_names: tuple[str, ...] = ("uvicorn.access", "uvicorn.error")) -> None:
    """Attach the filters to uvicorn's loggers, once (create_app may run more than once in a process)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        wanted = [RedactSecrets(), *([HealthProbes()] if name == "uvicorn.access" else [])]
        for log_filter in wanted:
            if not any(type(existing) is type(log_filter) for existing in logger.filters):
                logger.addFilter(log_filter)
