"""API_KEYS: Bearer keys on the transcription routes, probes left open, keys never shown."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from app.config import Settings

KEY = "k3y-0123456789abcdef"
OTHER = "another-key-fedcba9876543210"


def _post(client, sample_bytes, key: str | None = None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post("/transcribe", files={"file": ("a.wav", sample_bytes)}, headers=headers)


def test_without_keys_nothing_is_asked(client, sample_bytes):
    assert _post(client, sample_bytes).status_code == 200


def test_keys_are_required_and_checked(make_client, sample_bytes, fake_pipeline):
    client = make_client(api_keys=f"{KEY}, {OTHER}")
    for key, status in ((None, 401), ("wrong-key-0000000000", 401), (KEY, 200), (OTHER, 200)):
        reply = _post(client, sample_bytes, key)
        assert reply.status_code == status, (key, reply.text)
        if status == 401:
            assert reply.headers["www-authenticate"].startswith("Bearer")
            assert reply.json()["error"]["code"] == "invalid_api_key"
            assert KEY not in reply.text and OTHER not in reply.text
    assert len(fake_pipeline.calls) == 2, "refused requests never reach the pipeline"


def test_a_refused_key_costs_no_upload(make_client):
    """The key is checked before the body is read: a body that never ends still gets its 401."""
    client = make_client(api_keys=KEY)

    def endless():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        raise AssertionError("the body was read")

    reply = client.post("/transcribe", content=endless(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert reply.status_code == 401


def test_probes_stay_open_unless_asked(make_client, caplog):
    with caplog.at_level(logging.DEBUG):
        client = make_client(api_keys=KEY)
        health = client.get("/health")
    assert health.status_code == 200 and KEY not in health.text
    assert KEY not in caplog.text
    closed = make_client(api_keys=KEY, health_requires_key=True)
    assert closed.get("/health").status_code == 401
    assert closed.get("/health", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert closed.get("/health/live").status_code == 200


def test_keys_from_a_mounted_file(make_client, sample_bytes, tmp_path):
    secret = tmp_path / "api-keys"
    secret.write_text(f"# rotated 2026-11\n{KEY}\n\n{OTHER}\n")
    client = make_client(api_keys=str(secret))
    assert _post(client, sample_bytes, OTHER).status_code == 200
    assert _post(client, sample_bytes, "not-in-the-file-000000").status_code == 401


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("short", "at least 16"),
        ("changeme-changeme", "placeholder"),
        ("/no/such/file", "cannot be read"),
        (",", "no key"),
    ],
)
def test_unusable_keys_refuse_to_start(value, why, tmp_path):
    with pytest.raises(ValidationError, match=why) as refused:
        Settings(api_keys=value, model_cache_dir=tmp_path)
    if value not in (",", "/no/such/file"):  # the path is named on purpose
        assert value not in str(refused.value), "a refused key is printed"


def test_keys_never_appear_in_settings_repr(tmp_path):
    settings = Settings(api_keys=KEY, model_cache_dir=tmp_path)
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())
