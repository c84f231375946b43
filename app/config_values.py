"""How the text of a setting becomes its value: API key lists, host names, JSON lists.

``app/config.py``'s validators call these; they are plain functions, so tests and scripts
can use them without building a ``Settings``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

_PLACEHOLDER_KEYS = frozenset({"changeme-changeme", "your-api-key-here", "xxxxxxxxxxxxxxxx"})
# `name:key` in API_KEYS: a tenant's name (for logs and /metrics), then its key.
_NAMED_KEY = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):(.+)")


_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*"
)


def is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(text))
    return True


def json_value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None


@dataclass(frozen=True)
class ApiKeyEntry:
    """One key of API_KEYS and the tenant it belongs to."""

    name: str  # `name:key`'s name, or `key-N` by position for a bare key; never derived from the key
    key: str = field(repr=False)
    named: bool = False


def parse_api_keys(secret: SecretStr | None) -> tuple[ApiKeyEntry, ...]:
    if secret is None:
        return ()
    value = secret.get_secret_value().strip()
    path = Path(value)
    if "," not in value and (value.startswith(("/", "./")) or path.is_file()):
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ValueError(f"API_KEYS names a file that cannot be read: {path} ({exc.strerror})") from None
        raw = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    else:
        raw = [entry.strip() for entry in value.split(",") if entry.strip()]
    if not raw:
        raise ValueError("API_KEYS is set but holds no key")
    entries: list[ApiKeyEntry] = []
    for position, text in enumerate(raw, start=1):
        named = _NAMED_KEY.fullmatch(text)
        name, key = (named.group(1), named.group(2)) if named else (f"key-{position}", text)
        if len(key) < 16 or key.lower() in _PLACEHOLDER_KEYS:
            raise ValueError("every API key must be at least 16 characters and not a placeholder")
        entries.append(ApiKeyEntry(name, key, named=named is not None))
    if len({entry.key for entry in entries}) != len(entries):
        raise ValueError("API_KEYS holds the same key twice")
    return tuple(entries)
