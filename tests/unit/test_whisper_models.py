"""WhisperModels: models loaded on first use, unloaded when idle or for room, never under a request."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest

from app.engine.whisper_models import LoadedWhisper, ModelSpec, ModelState, WhisperModels
from app.errors import Busy, ModelNotFound, NotReady

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Shelf:
    """The load and release a WhisperModels is given, recording what happened."""

    def __init__(self, sizes: dict[str, float] | None = None) -> None:
        self.sizes = sizes or {}
        self.loads: list[str] = []
        self.released: list[str] = []
        self.release_gate = threading.Event()
        self.release_gate.set()
        self.releasing = threading.Event()
        self.fail: set[str] = set()

    def load(self, spec: ModelSpec) -> LoadedWhisper:
        if spec.id in self.fail:
            raise OSError(f"no weights for {spec.id}")
        self.loads.append(spec.id)
        languages = frozenset({"en"}) if spec.id.endswith(".en") else frozenset({"en", "de"})
        whisper: Any = SimpleNamespace(
            name=spec.id,
            languages=languages,
            multilingual=len(languages) > 1,
            scheduler=SimpleNamespace(close=lambda: None),
        )
        return LoadedWhisper(whisper, self.sizes.get(spec.id, 100.0), f"digest-of-{spec.id}")

    def release(self, whisper: Any) -> None:
        self.releasing.set()
        self.release_gate.wait(10)
        self.released.append(whisper.name)


def models(
    shelf: Shelf, *names: str, clock: Clock | None = None, sizes_known: bool = True, **options: Any
) -> WhisperModels:
    """``sizes_known``: the specs carry the sizes (local folders); else they are learnt by loading (hub models)."""
    specs = [
        ModelSpec(name, f"/models/{name}", name.endswith(".en"), shelf.sizes.get(name) if sizes_known else None)
        for name in names
    ]
    built = WhisperModels(specs, names[0], shelf.load, shelf.release, clock=clock or Clock(), **options)
    built.start()
    return built


def states(built: WhisperModels) -> dict[str, ModelState]:
    return {status.id: status.state for status in built.statuses()}


def test_only_the_default_loads_at_start_and_another_loads_on_its_first_use():
    shelf = Shelf()
    built = models(shelf, "large", "turbo")
    assert shelf.loads == ["large"]
    assert states(built) == {"large": ModelState.LOADED, "turbo": ModelState.UNLOADED}
    with built.use("turbo") as whisper:
        assert whisper.name == "turbo"
        assert next(s for s in built.statuses() if s.id == "turbo").in_use == 1
    with built.use("turbo"):
        pass
    assert shelf.loads == ["large", "turbo"]  # loaded once
    turbo = next(s for s in built.statuses() if s.id == "turbo")
    assert (turbo.loads, turbo.in_use, turbo.memory_mb) == (1, 0, 100.0)
    assert turbo.idle_since is not None and turbo.loaded_at is not None
    assert built.weights("turbo") == "digest-of-turbo"


def test_names_a_request_may_use():
    built = models(Shelf(), "large", "small.en")
    assert built.id_of(None) == built.id_of("whisper-1") == "large"
    assert built.id_of("small.en") == built.id_of("/models/small.en") == "small.en"
    with pytest.raises(ModelNotFound) as refused:
        built.id_of("medium")
    assert "`medium` does not exist" in refused.value.message
    assert "`large`" in refused.value.message and "`small.en`" in refused.value.message
    assert refused.value.status_code == 404 and refused.value.code == "model_not_found"


def test_english_only_is_known_from_the_name_before_a_load_and_from_the_model_after():
    built = models(Shelf(), "large", "small.en")
    assert built.english_only("small.en") and built.languages("small.en") is None
    with built.use("small.en"):
        pass
    assert built.languages("small.en") == {"en"} and not built.english_only("large")


def test_idle_models_are_unloaded_least_recently_used_first_but_never_the_default_or_one_in_use():
    shelf, clock = Shelf(), Clock()
    built = models(shelf, "large", "turbo", "distil", clock=clock, idle_s=60)
    with built.use("turbo"):
        pass
    clock.now += 30
    with built.use("distil"):
        clock.now += 100  # distil is in use all this time
        assert built.reap() == ["turbo"]
    assert states(built)["distil"] is ModelState.LOADED
    clock.now += 59
    assert built.reap() == []
    clock.now += 1
    assert built.reap() == ["distil"]
    assert states(built) == {"large": ModelState.LOADED, "turbo": ModelState.UNLOADED, "distil": ModelState.UNLOADED}
    assert shelf.released == ["turbo", "distil"]
    turbo = next(s for s in built.statuses() if s.id == "turbo")
    assert (turbo.loads, turbo.unloads, turbo.idle_since, turbo.loaded_at) == (1, 1, None, None)


@pytest.mark.parametrize("sizes_known", [True, False], ids=["room-before-the-load", "room-after-the-load"])
def test_a_load_makes_room_in_the_budget_by_unloading_the_least_recently_used_idle_model(sizes_known: bool):
    shelf, clock = Shelf({"large": 300, "turbo": 200, "distil": 200, "small": 200}), Clock()
    built = models(shelf, "large", "turbo", "distil", "small", clock=clock, budget_mb=750, sizes_known=sizes_known)
    for name in ("turbo", "distil"):
        with built.use(name):
            clock.now += 1
    with built.use("small"):  # 300 + 200 + 200 + 200 > 750: turbo, used longest ago, goes
        pass
    assert shelf.released == ["turbo"]
    assert states(built) == {
        "large": ModelState.LOADED,
        "turbo": ModelState.UNLOADED,
        "distil": ModelState.LOADED,
        "small": ModelState.LOADED,
    }


def test_a_load_waits_for_room_while_every_other_model_is_in_use_then_loads():
    shelf = Shelf({"large": 300, "turbo": 300, "small": 300})
    built = models(shelf, "large", "turbo", "small", budget_mb=700)
    turbo_in_use, turbo_done = threading.Event(), threading.Event()

    def hold_turbo() -> None:
        with built.use("turbo"):
            turbo_in_use.set()
            turbo_done.wait(10)

    holder = threading.Thread(target=hold_turbo)
    holder.start()
    turbo_in_use.wait(10)
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(_use(built, "small")))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and got == []  # no room while turbo is in use
    turbo_done.set()
    holder.join(10)
    waiter.join(10)
    assert got == ["small"] and shelf.released == ["turbo"]


def test_a_load_that_cannot_get_room_in_time_is_a_503_in_words():
    shelf = Shelf({"large": 300, "turbo": 300, "small": 300})
    built = models(shelf, "large", "turbo", "small", budget_mb=700, wait_s=0.0)
    with built.use("turbo"), pytest.raises(Busy) as refused:
        _use(built, "small")
    assert "needs 300 MB of the 700 MB model budget" in refused.value.message and "turbo" in refused.value.message
    assert refused.value.status_code == 503 and refused.value.headers
    assert states(built)["small"] is ModelState.UNLOADED  # a later request may try again


def test_a_request_arriving_during_an_unload_gets_the_model_loaded_again():
    """whisper-asr-webservice #321: the request after an idle unload crashed."""
    shelf, clock = Shelf(), Clock()
    built = models(shelf, "large", "turbo", clock=clock, idle_s=10)
    with built.use("turbo"):
        pass
    clock.now += 11
    shelf.release_gate.clear()  # the unload takes its time
    reaper = threading.Thread(target=built.reap)
    reaper.start()
    assert shelf.releasing.wait(10)
    assert states(built)["turbo"] is ModelState.UNLOADING
    got: list[str] = []
    arrival = threading.Thread(target=lambda: got.append(_use(built, "turbo")))
    arrival.start()
    arrival.join(0.3)
    assert arrival.is_alive()  # it waits for the unload to finish, then loads
    shelf.release_gate.set()
    reaper.join(10)
    arrival.join(10)
    assert got == ["turbo"] and shelf.loads == ["large", "turbo", "turbo"]
    assert states(built)["turbo"] is ModelState.LOADED


def test_concurrent_first_requests_share_one_load():
    shelf = Shelf()
    built = models(shelf, "large", "turbo")
    gate = threading.Barrier(8)
    got: list[str] = []
    threads = [threading.Thread(target=lambda: (gate.wait(), got.append(_use(built, "turbo")))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert got == ["turbo"] * 8 and shelf.loads == ["large", "turbo"]


def test_a_failed_load_is_a_503_with_the_reason_and_the_next_request_tries_again():
    shelf = Shelf()
    built = models(shelf, "large", "turbo")
    shelf.fail.add("turbo")
    with pytest.raises(NotReady, match="could not be loaded: OSError: no weights for turbo"):
        _use(built, "turbo")
    status = next(s for s in built.statuses() if s.id == "turbo")
    assert status.state is ModelState.UNLOADED and "no weights" in (status.last_error or "")
    shelf.fail.clear()
    assert _use(built, "turbo") == "turbo"


def test_after_close_requests_are_refused_not_hung():
    built = models(Shelf(), "large", "turbo")
    built.close()
    with pytest.raises(NotReady, match="shutting down"):
        _use(built, "turbo")


def _use(built: WhisperModels, name: str) -> str:
    with built.use(name) as whisper:
        return str(whisper.name)


def test_a_model_that_can_never_fit_beside_the_default_is_refused_at_once():
    shelf = Shelf({"large": 500, "small": 300})
    built = models(shelf, "large", "small", budget_mb=700)
    with pytest.raises(Busy, match="leaves 200 MB beside `large`, which stay loaded: raise MODEL_MEMORY_BUDGET_MB"):
        _use(built, "small")


def test_a_model_kept_loaded_is_never_unloaded_idle_nor_for_room():
    shelf, clock = Shelf({"large": 500, "turbo": 100, "small": 300}), Clock()
    built = models(shelf, "large", "turbo", "small", clock=clock, idle_s=60, budget_mb=700)
    built.keep_loaded("turbo")
    assert shelf.loads == ["large", "turbo"]
    clock.now += 3600
    assert built.reap() == []
    with pytest.raises(Busy, match="beside `large`, `turbo`, which stay loaded"):
        _use(built, "small")
    assert states(built)["turbo"] is ModelState.LOADED
