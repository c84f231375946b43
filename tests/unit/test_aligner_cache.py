"""The aligner cache's policy: loads outside the shared lock, failures retried after a back-off."""

from __future__ import annotations

import threading
import time

from app.engine.align.aligners import Aligner, AlignerCache
from tests.support.waiting import wait_for


class ScriptedCache(AlignerCache):
    """The cache with ``_load`` replaced: no weights, just the behaviour under test."""

    def __init__(self, **kwargs) -> None:
        super().__init__(device="cpu", overrides={}, cache_dir=kwargs.pop("cache_dir"), capacity=4, **kwargs)
        self.loads: list[str] = []
        self.fail = False
        self.gate: dict[str, threading.Event] = {}

    def _load(self, language: str) -> Aligner:
        self.loads.append(language)
        if language in self.gate:
            self.gate[language].wait(60)
        if self.fail:
            raise OSError("network unreachable")
        return Aligner(language, f"model-{language}", object(), {})


def test_a_slow_download_blocks_only_its_own_language(tmp_path):
    cache = ScriptedCache(cache_dir=tmp_path)
    assert cache.get("en") is not None
    cache.gate["de"] = threading.Event()
    slow = threading.Thread(target=cache.get, args=("de",), daemon=True)
    slow.start()
    wait_for(lambda: "de" in cache.loads, 10, "the German download started")
    english: list[object] = []
    other = threading.Thread(target=lambda: english.append(cache.get("en")), daemon=True)
    other.start()
    other.join(30)
    assert english and english[0] is not None, "English waited on the German download"
    assert not cache.gate["de"].is_set() and cache.status()["loaded"][0]["language"] == "en"
    waiter_result: list[object] = []
    waiter = threading.Thread(target=lambda: waiter_result.append(cache.get("de")), daemon=True)
    waiter.start()
    cache.gate["de"].set()
    slow.join(5)
    waiter.join(5)
    assert waiter_result[0] is not None and cache.loads.count("de") == 1, "one download for both requests"


def test_a_failure_is_retried_after_a_back_off_not_never(tmp_path):
    cache = ScriptedCache(cache_dir=tmp_path)
    cache.fail = True
    assert cache.get("fr") is None
    assert "network unreachable" in (cache.unavailable_reason("fr") or "")
    assert cache.get("fr") is None and cache.loads == ["fr"], "no retry inside the back-off"
    failure = cache._failures["fr"]
    assert 59 < failure.retry_at - time.monotonic() <= 60
    failure.retry_at = time.monotonic()  # the back-off has passed
    assert cache.get("fr") is None and cache.loads == ["fr", "fr"]
    assert 119 < cache._failures["fr"].retry_at - time.monotonic() <= 120, "the back-off doubles"
    cache.fail = False
    cache._failures["fr"].retry_at = time.monotonic()
    assert cache.get("fr") is not None
    assert cache.unavailable_reason("fr") is None and cache.status()["unavailable"] == {}


def test_offline_refuses_torchaudio_weights_that_are_not_cached(tmp_path):
    cache = AlignerCache(device="cpu", overrides={}, cache_dir=tmp_path, capacity=2, offline=True)
    started = time.monotonic()
    assert cache.get("en") is None
    assert time.monotonic() - started < 5
    reason = cache.unavailable_reason("en") or ""
    assert "OFFLINE=true" in reason and "wav2vec2_fairseq_base_ls960_asr_ls960.pth" in reason
