"""A refused setting, said in one line an operator can act on: which variable, what is wrong
with its value, and what to set instead — never a traceback, never a secret's value.

``load_settings`` is how every entry point (``python -m app``, ``prewarm``, ``create_app``
without settings) reads the environment.
"""

from __future__ import annotations

import json
import re
import sys
import types
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import SettingsError

from app.config import Settings

_MAX_SHOWN = 200  # characters of a refused value that the line repeats


class SettingsRefused(ValueError):
    """One line: every problem of the environment's settings, each with its fix."""


def load_settings() -> Settings:
    """``Settings()`` from the environment, or SettingsRefused in one line."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsRefused(describe(exc)) from None
    except SettingsError as exc:  # a value pydantic-settings could not even parse
        name = re.search(r'field "(\w+)"', str(exc))
        field = name.group(1) if name else None
        problem = f"{env_name(field)} cannot be parsed" if field else str(exc)
        raise SettingsRefused(f"Refusing to start: {problem}. Fix: {fix(field) if field else 'correct it'}.") from None


def settings_or_exit() -> Settings:
    """For entry points: the settings, or the one line on stderr and exit status 2."""
    try:
        return load_settings()
    except SettingsRefused as refused:
        print(refused, file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors(include_url=False):
        field = str(item["loc"][0]) if item.get("loc") else None
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        if field is None or field not in Settings.model_fields:  # a rule across settings: its message says both
            problems.append(message)
            continue
        shown = "" if _secret(field) else f"={_shown(item.get('input'))}"
        problems.append(f"{env_name(field)}{shown}: {message}. Fix: {fix(field)}")
    return "Refusing to start: " + "; ".join(problems) + ("" if problems[-1].endswith(".") else ".")


def env_name(field: str) -> str:
    """The environment variable of a setting (also the table in docs/configuration.md, scripts/settings_table.py)."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else field.upper()


def default_text(field: str) -> str | None:
    """A setting's default as an operator would write it; None when it is unset by default."""
    value = Settings.model_fields[field].get_default(call_default_factory=True)
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def fix(field: str) -> str:
    """What the variable takes, and how to go back to the default."""
    wanted = expected(field)
    default = default_text(field)
    back = "or unset it" + (f" (default `{default}`)" if default not in (None, "", "[]", "{}") else "")
    return f"set {env_name(field)} to {wanted}, {back}"


# What the free-form settings take, where the type alone does not say.
_EXPECTED = {
    "api_keys": "keys of at least 16 characters, comma-separated (`name:key` names a tenant), or a key file's path",
    "jobs_database_url": "a `postgresql://user:password@host/db` URL",
    "webhook_secret": "a long random string",
    "hf_token": "a Hugging Face access token",
    "host": "an IP address or host name to listen on",
    "ffmpeg_binary": "an ffmpeg on PATH, or its full path",
    "whisper_model": "`auto`, a bundled model, a hub name or an existing local model folder",
    "temp_dir": "an existing folder this process can write",
}


def expected(field: str) -> str:
    if field in _EXPECTED:
        return _EXPECTED[field]
    info = Settings.model_fields[field]
    annotation = _without_none(info.annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{choice}`" for choice in get_args(annotation))
    if annotation is bool:
        return "`true` or `false`"
    if annotation in (int, float):
        kind = "a whole number" if annotation is int else "a number"
        return kind + _bounds(info)
    if origin is list:
        return "a comma-separated list (or a JSON list)"
    if origin is dict:
        return "`language=model` pairs separated by commas (or a JSON object)"
    if getattr(annotation, "__name__", "") == "Path":
        return "a folder this process can write (or create)"
    return "a value as docs/configuration.md describes"


def _bounds(info: FieldInfo) -> str:
    low: Any = None
    high: Any = None
    low_word, high_word = "from", "to"
    for rule in info.metadata:
        if isinstance(rule, annotated_types.Ge):
            low = rule.ge
        elif isinstance(rule, annotated_types.Gt):
            low, low_word = rule.gt, "above"
        elif isinstance(rule, annotated_types.Le):
            high = rule.le
        elif isinstance(rule, annotated_types.Lt):
            high, high_word = rule.lt, "below"
    if low is not None and high is not None:
        return f" {low_word} {low:g} {high_word} {high:g}" if low_word == "from" else f" {low:g}–{high:g}"
    if low is not None:
        return f" {low_word} {low:g}" if low_word == "above" else f" of at least {low:g}"
    if high is not None:
        return f" of at most {high:g}"
    return ""


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _secret(field: str) -> bool:
    return _without_none(Settings.model_fields[field].annotation) is SecretStr


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 2] + "…'"
