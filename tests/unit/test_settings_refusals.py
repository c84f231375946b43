"""Every setting refuses a bad value at start-up in one line: the variable, the problem, the fix.

The walk covers every field of ``Settings``: each gets a value it must refuse (from its type,
or from the list below for the free-form ones), or is listed as taking any value.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest

from app.config import Settings
from app.config_errors import SettingsRefused, env_name, load_settings

# Settings where every string is a valid value (a name shown to users, a token checked by the hub).
ANY_VALUE = {
    "service_name": "any name is shown as is",
    "hf_token": "any string may be a token; the hub checks it when it is used",
}


def bad_values(field: str, tmp_path: Path) -> list[str]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    special = {
        "whisper_model": ["./no-such-model-folder"],
        "whisper_models": ["bundled-tiny.en,./no-such-model-folder", "[not json"],
        "realtime_partial_model": ["large-v3-turbo"],  # not among the models served
        "diarization_pipeline": ["/no/such/pipeline.yaml"],
        "ffmpeg_binary": ["/no/such/ffmpeg"],
        "host": ["not a host!"],
        "api_keys": ["too-short", "changeme-changeme", "/no/such/key-file"],
        "jobs_database_url": ["mysql://user:password@db/jobs"],
        "webhook_secret": ["short"],
        "align_models": ["en", "{not json"],
        "preload_align_languages": ["english", "[not json"],
        "webhook_allowed_hosts": ["https://hooks.example.com/x", "[1,"],
        "temp_dir": [str(tmp_path / "missing"), str(a_file)],
        "model_cache_dir": [str(a_file / "models")],
        "jobs_dir": [str(a_file / "jobs")],
    }
    if field in special:
        return special[field]
    annotation = Settings.model_fields[field].annotation
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Literal:
        return ["no-such-choice"]
    if annotation is bool:
        return ["maybe"]
    if annotation in (int, float):
        return ["twelve", "-100000"]
    raise AssertionError(f"{field}: no bad value known; add one, or list it in ANY_VALUE with why")


def every_setting() -> list[str]:
    return [name for name in Settings.model_fields if name not in ANY_VALUE]


@pytest.mark.parametrize("field", every_setting())
def test_a_bad_value_is_refused_in_one_line(field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(env_name(name), raising=False)
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "models"))
    for value in bad_values(field, tmp_path):
        monkeypatch.setenv(env_name(field), value)
        with pytest.raises(SettingsRefused) as refused:
            load_settings()
        line = str(refused.value)
        assert "\n" not in line and line.startswith("Refusing to start: "), line
        assert env_name(field) in line and ("Fix: set" in line or " or " in line), line
        assert "Traceback" not in line and "errors.pydantic.dev" not in line
        if field in ("api_keys", "jobs_database_url", "webhook_secret") and not value.startswith("/"):
            assert value not in line, "a secret's value is repeated"
    monkeypatch.delenv(env_name(field))
    load_settings()  # and without it, the rest starts


def test_every_setting_is_walked() -> None:
    assert set(every_setting()) | set(ANY_VALUE) == set(Settings.model_fields)


def test_a_rule_across_settings_names_both_and_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("BATCH_SIZE", "128")
    monkeypatch.setenv("MAX_BATCH_SIZE", "32")
    with pytest.raises(SettingsRefused, match=r"BATCH_SIZE \(128\) exceeds MAX_BATCH_SIZE \(32\): lower BATCH_SIZE"):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value", "parsed"),
    [
        ("WEBHOOK_ALLOWED_HOSTS", "hooks.example.com, *.example.org", ["hooks.example.com", "*.example.org"]),
        ("WEBHOOK_ALLOWED_HOSTS", '["hooks.example.com"]', ["hooks.example.com"]),
        ("PRELOAD_ALIGN_LANGUAGES", "en,DE", ["en", "de"]),
        ("ALIGN_MODELS", "en=/models/en, de=org/wav2vec2-de", {"en": "/models/en", "de": "org/wav2vec2-de"}),
        ("ALIGN_MODELS", '{"en": "/models/en"}', {"en": "/models/en"}),
    ],
)
def test_lists_take_commas_or_json(variable: str, value: str, parsed: Any, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), variable.lower()) == parsed


@pytest.mark.parametrize("command", [[], ["prewarm"]])
def test_the_process_exits_with_the_line_and_no_traceback(command: list[str], tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TEMP_DIR": str(tmp_path / "missing")}
    done = subprocess.run(
        [sys.executable, "-m", "app", *command], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"Refusing to start: TEMP_DIR='{tmp_path / 'missing'}': {tmp_path / 'missing'} is not an existing folder. "
        "Fix: set TEMP_DIR to an existing folder this process can write, or unset it."
    ]
    assert "Traceback" not in done.stdout + done.stderr
