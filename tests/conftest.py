"""Fixtures every tier shares: the real speech that ships with pyannote.audio, and settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.serving.warmup import sample_speech_path
from tests.support.postgres import postgres_server

SAMPLE_DIR = sample_speech_path().parent


TIERS = ("unit", "api", "e2e", "hostile", "gpu", "image")
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the folder right under tests/: `-m "unit or api"` is the fast
    set, which starts no server."""
    for item in items:
        path = Path(str(item.fspath)).resolve()
        if path.is_relative_to(TESTS) and (tier := path.relative_to(TESTS).parts[0]) in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def sample_wav() -> Path:
    return SAMPLE_DIR / "sample.wav"


@pytest.fixture(scope="session")
def sample_stm() -> Path:
    return SAMPLE_DIR / "sample.stm"


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings isolated from the developer's environment and caches."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"model_cache_dir": tmp_path / "models", "temp_dir": tmp_path}
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """One real Postgres server (Debian's package) for the session; tests reset its tables."""
    with postgres_server() as url:
        yield url
