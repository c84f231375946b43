from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings

REPO = Path(__file__).resolve().parents[2]


def test_the_configuration_table_matches_the_settings_class():
    import importlib.util

    spec = importlib.util.spec_from_file_location("settings_table", REPO / "scripts" / "settings_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    documented = (REPO / "docs" / "configuration.md").read_text()
    assert module.table() in documented, "run: python scripts/settings_table.py --write"


def test_every_setting_is_documented():
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no docstring"


def test_environment_is_read(monkeypatch):
    monkeypatch.setenv("WHISPER_MODEL", "bundled-tiny.en")
    monkeypatch.setenv("ALIGN_MODELS", '{"en": "/models/w2v"}')
    monkeypatch.setenv("ENABLE_DIARIZATION", "false")
    monkeypatch.setenv("HF_TOKEN", "hf_abc")
    settings = Settings()
    assert settings.whisper_model == "bundled-tiny.en"
    assert settings.align_models == {"en": "/models/w2v"}
    assert settings.enable_diarization is False
    assert settings.hf_token is not None and settings.hf_token.get_secret_value() == "hf_abc"
    assert "hf_abc" not in repr(settings)


@pytest.mark.parametrize(
    "env",
    [{"DEVICE": "tpu"}, {"COMPUTE_TYPE": "int4"}, {"BATCH_SIZE": "100", "MAX_BATCH_SIZE": "10"}, {"PORT": "0"}],
)
def test_bad_settings_are_refused(monkeypatch, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings()


def test_jobs_at_once_follows_the_device_unless_set():
    assert Settings(batch_size=24).jobs_at_once("cuda") == 24
    assert Settings(batch_size=1).jobs_at_once("cuda") == 2
    assert Settings(batch_size=24).jobs_at_once("cpu") == Settings().jobs_at_once(None) == 2
    assert Settings(job_concurrency=5).jobs_at_once("cuda") == Settings(job_concurrency=5).jobs_at_once("cpu") == 5
    assert Settings(job_concurrency=0).jobs_at_once("cuda") == 0
