"""The Whisper models a server may serve (``WHISPER_MODELS``): the default loaded at start-up, others on first use.

A request holds its model (``use``) from the moment its options are resolved to its last
batch, so a model is unloaded only while nothing uses it: after ``MODEL_IDLE_S`` unused (the
least recently used first), or at once when a load needs room in the memory budget. A
request that arrives while its model is loading or unloading waits and gets the model
(loaded afresh after an unload), never an error about the model's state — the crash
whisper-asr-webservice #321 was. The default model is never unloaded: it is what a ready
``/health`` promises; nor is a model the server relies on beside it (``keep_loaded``: live
partials' ``REALTIME_PARTIAL_MODEL``).

Plain mechanism: how a model is loaded and released (engines, warmup, GPU memory) is the
caller's ``load``/``release`` (app/serving/loader.py); each model has its own ``Whisper`` and
scheduler, so batches only ever hold windows of one model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.engine.whisper.stage import Whisper
from app.errors import Busy, ModelNotFound, NotReady, retry_later

logger = logging.getLogger(__name__)

# The model id every OpenAI client sends by default; here it names the default model.
DEFAULT_MODEL_ALIAS = "whisper-1"


class ModelState(StrEnum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"
    UNLOADING = "unloading"


@dataclass(frozen=True)
class ModelSpec:
    """One servable model, known before it is loaded."""

    id: str  # what requests name in ``model``
    source: str  # the WHISPER_MODELS entry: a hub name, a folder, bundled-…
    english_only: bool
    size_mb: float | None = None  # its weights on disk, when known before loading (the budget's first guess)


@dataclass(frozen=True)
class LoadedWhisper:
    """What ``load`` hands back: the model, what it took of the budget's memory, and its weights' identity."""

    whisper: Whisper
    memory_mb: float
    weights: str  # a digest of the weights' files (the job cache's fingerprint)


@dataclass(frozen=True)
class ModelStatus:
    id: str
    source: str
    default: bool
    state: ModelState
    in_use: int  # requests holding it now
    loaded_at: float | None  # Unix time of the current load
    idle_since: float | None  # Unix time it was last released, while loaded and unused
    loads: int
    unloads: int
    memory_mb: float | None  # measured at its last load
    last_error: str | None


@dataclass
class _Entry:
    spec: ModelSpec
    state: ModelState = ModelState.UNLOADED
    whisper: Whisper | None = None
    users: int = 0
    last_used: float = 0.0  # monotonic
    idle_since: float | None = None  # Unix time
    loaded_at: float | None = None
    loads: int = 0
    unloads: int = 0
    memory_mb: float | None = None
    weights: str | None = None
    last_error: str | None = None
    languages: frozenset[str] | None = None  # known once loaded


class WhisperModels:
    def __init__(
        self,
        specs: list[ModelSpec],
        default: str,
        load: Callable[[ModelSpec], LoadedWhisper],
        release: Callable[[Whisper], None],
        *,
        budget_mb: float = 0.0,
        idle_s: float = 0.0,
        wait_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``budget_mb`` 0: no budget; ``idle_s`` 0: models stay loaded; ``wait_s``: the longest a
        request waits for room in the budget or for a load before a 503."""
        self._entries = {spec.id: _Entry(spec) for spec in specs}
        if default not in self._entries:
            raise ValueError(f"the default model {default!r} is not among {sorted(self._entries)}")
        self.default = default
        self._kept = {default}  # never unloaded
        self._load, self._release = load, release
        self.budget_mb, self.idle_s, self.wait_s = budget_mb, idle_s, wait_s
        self._clock = clock
        self._changed = threading.Condition()
        self._closed = threading.Event()
        self._reaper: threading.Thread | None = None

    @classmethod
    def serving(cls, whisper: Whisper) -> WhisperModels:
        """Just ``whisper``, loaded already (a pipeline built around one model: tests, benchmarks)."""
        spec = ModelSpec(whisper.source.display_name, whisper.source.location, not whisper.multilingual)
        loaded = LoadedWhisper(whisper, 0.0, str(whisper.engine.model_path or whisper.source.location))
        models = cls([spec], spec.id, lambda _: loaded, lambda _: None)
        models.start()
        return models

    # --- names ---

    def id_of(self, requested: str | None) -> str:
        """The id a request's ``model`` names (None and ``whisper-1``: the default); ModelNotFound (404) else."""
        if requested is None or requested == DEFAULT_MODEL_ALIAS:
            return self.default
        if requested in self._entries:
            return requested
        for entry in self._entries.values():  # a WHISPER_MODELS entry as written (a folder's full path)
            if entry.spec.source == requested:
                return entry.spec.id
        listed = ", ".join(f"`{i}`" for i in self._entries)
        raise ModelNotFound(
            f"The model `{requested}` does not exist. This server has {listed} "
            f"(`{self.default}` is the default, also called `{DEFAULT_MODEL_ALIAS}`).",
            param="model",
        )

    def english_only(self, model_id: str) -> bool:
        """What the loaded model says; before its first load, what its name says (``*.en``)."""
        entry = self._entries[model_id]
        return entry.spec.english_only if entry.languages is None else entry.languages == {"en"}

    def languages(self, model_id: str) -> frozenset[str] | None:
        """The model's languages once it has been loaded; None before (its name says if it is English-only)."""
        return self._entries[model_id].languages

    def weights(self, model_id: str) -> str:
        """The identity of the model's weights: their digest once loaded, its source before."""
        entry = self._entries[model_id]
        return entry.weights or entry.spec.source

    # --- loading and using ---

    def start(self) -> Whisper:
        """Load the default model (start-up) and start unloading idle ones; returns the default."""
        with self.use(self.default) as whisper:
            pass
        if self.idle_s > 0 and self._reaper is None:
            self._reaper = threading.Thread(target=self._reap_forever, name="model-reaper", daemon=True)
            self._reaper.start()
        return whisper

    def keep_loaded(self, model_id: str) -> None:
        """Load ``model_id`` now (this thread) and never unload it, as the default (once it loaded)."""
        with self.use(model_id), self._changed:
            self._kept.add(model_id)

    @property
    def default_whisper(self) -> Whisper:
        whisper = self._entries[self.default].whisper
        assert whisper is not None, "the default model is loaded at start-up and never unloaded"
        return whisper

    @contextmanager
    def use(self, model_id: str) -> Iterator[Whisper]:
        """The model, loaded (this thread loads it when nobody is); it is not unloaded until released."""
        whisper = self._acquire(self._entries[model_id])
        try:
            yield whisper
        finally:
            with self._changed:
                entry = self._entries[model_id]
                entry.users -= 1
                entry.last_used = self._clock()
                if entry.users == 0:
                    entry.idle_since = time.time()
                self._changed.notify_all()

    def _acquire(self, entry: _Entry) -> Whisper:
        deadline = self._clock() + self.wait_s
        with self._changed:
            while True:
                if self._closed.is_set():
                    raise NotReady("The server is shutting down.", headers=retry_later())
                if entry.state is ModelState.LOADED and entry.whisper is not None:
                    entry.users += 1
                    entry.idle_since = None
                    return entry.whisper
                if entry.state is ModelState.UNLOADED:
                    entry.state = ModelState.LOADING  # this thread loads it; others wait for it
                    break
                self._wait(deadline, f"The model `{entry.spec.id}` is still {entry.state.value}")
        try:
            whisper = self._load_entry(entry, deadline)
        except BaseException:
            with self._changed:
                entry.state = ModelState.UNLOADED
                self._changed.notify_all()
            raise
        self._trim(entry)
        return whisper

    def _load_entry(self, entry: _Entry, deadline: float) -> Whisper:
        self._make_room(entry, deadline)
        logger.info("Loading Whisper model %s", entry.spec.id)
        started = self._clock()
        try:
            loaded = self._load(entry.spec)
        except Exception as exc:
            entry.last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("Could not load Whisper model %s", entry.spec.id)
            if entry.spec.id == self.default:
                raise
            raise NotReady(f"The model `{entry.spec.id}` could not be loaded: {entry.last_error}") from exc
        with self._changed:
            entry.whisper = loaded.whisper
            entry.memory_mb, entry.weights = loaded.memory_mb, loaded.weights
            entry.languages = loaded.whisper.languages
            entry.state, entry.loads, entry.last_error = ModelState.LOADED, entry.loads + 1, None
            entry.loaded_at, entry.users, entry.idle_since = time.time(), entry.users + 1, None
            self._changed.notify_all()
        logger.info(
            "Whisper model %s loaded in %.2f s (%.0f MB)", entry.spec.id, self._clock() - started, loaded.memory_mb
        )
        return loaded.whisper

    def _make_room(self, entry: _Entry, deadline: float) -> None:
        """Unload idle models, least recently used first, until ``entry`` fits the budget (waits while all are busy).

        Its size is what its last load took, else its files on disk; a hub model's first load
        has neither, so room is made after it (``_trim``).
        """
        needed = entry.memory_mb or entry.spec.size_mb or 0.0
        if not self.budget_mb or not needed:
            return
        with self._changed:
            while self._used_mb(but=entry) + needed > self.budget_mb:
                if self._unload_least_recent(but=entry):
                    continue
                held = [e for e in self._entries.values() if e is not entry and e.state is not ModelState.UNLOADED]
                if not held:
                    return  # alone and still over: load anyway (the budget is smaller than one model)
                if all(e.spec.id in self._kept for e in held):  # waiting cannot make room: say so now
                    kept = ", ".join(f"`{e.spec.id}`" for e in held)
                    raise Busy(
                        f"The model `{entry.spec.id}` needs {needed:.0f} MB, and the {self.budget_mb:.0f} MB model "
                        f"budget leaves {self.budget_mb - self._used_mb(but=entry):.0f} MB beside {kept}, which "
                        "stay loaded: raise MODEL_MEMORY_BUDGET_MB to serve them all."
                    )
                busy = ", ".join(e.spec.id for e in self._entries.values() if e.users or e.spec.id in self._kept)
                self._wait(
                    deadline,
                    f"The model `{entry.spec.id}` needs {needed:.0f} MB of the {self.budget_mb:.0f} MB model budget, "
                    f"which models in use hold ({busy})",
                    busy=True,
                )

    def _trim(self, loaded: _Entry) -> None:
        """After a load: unload idle models (least recently used first) while the budget is exceeded."""
        if not self.budget_mb:
            return
        with self._changed:
            while self._used_mb() > self.budget_mb and self._unload_least_recent(but=loaded):
                pass
            if self._used_mb() > self.budget_mb:
                logger.warning("Whisper models take %.0f MB, over the %.0f MB budget", self._used_mb(), self.budget_mb)

    def _unload_least_recent(self, but: _Entry) -> bool:
        """Holding the lock: unload the idle model used longest ago (not ``but``); False when none is idle."""
        idle = [e for e in self._entries.values() if self._unloadable(e) and e is not but]
        if not idle:
            return False
        self._unload(min(idle, key=lambda e: e.last_used))
        return True

    def _wait(self, deadline: float, why: str, *, busy: bool = False) -> None:
        """Wait (holding the lock) for a model's state to change; a 503 saying ``why`` once past ``deadline``."""
        remaining = deadline - self._clock()
        if remaining <= 0:
            error = Busy if busy else NotReady
            raise error(f"{why}; retry later.", headers=retry_later(30))
        self._changed.wait(min(remaining, 1.0))  # wakes now and then to notice a shutdown

    def _used_mb(self, but: _Entry | None = None) -> float:
        return sum(
            e.memory_mb or e.spec.size_mb or 0.0
            for e in self._entries.values()
            if e is not but and e.state is not ModelState.UNLOADED
        )

    def _unloadable(self, entry: _Entry) -> bool:
        return entry.state is ModelState.LOADED and entry.users == 0 and entry.spec.id not in self._kept

    # --- unloading ---

    def reap(self) -> list[str]:
        """Unload every model idle for ``idle_s`` (least recently used first); the ids unloaded."""
        if self.idle_s <= 0:
            return []
        unloaded = []
        with self._changed:
            now = self._clock()
            for entry in sorted(self._entries.values(), key=lambda e: e.last_used):
                if self._unloadable(entry) and now - entry.last_used >= self.idle_s:
                    self._unload(entry)
                    unloaded.append(entry.spec.id)
        return unloaded

    def _unload(self, entry: _Entry) -> None:
        """Called holding the lock; released while the engine lets go, so arrivals wait on UNLOADING."""
        whisper, entry.whisper = entry.whisper, None
        entry.state = ModelState.UNLOADING
        self._changed.release()
        try:
            logger.info("Unloading Whisper model %s (idle)", entry.spec.id)
            if whisper is not None:
                self._release(whisper)
        except Exception:
            logger.exception("Releasing Whisper model %s failed", entry.spec.id)
        finally:
            self._changed.acquire()
            entry.state, entry.unloads, entry.loaded_at, entry.idle_since = (
                ModelState.UNLOADED,
                entry.unloads + 1,
                None,
                None,
            )
            self._changed.notify_all()

    def _reap_forever(self) -> None:
        interval = min(max(self.idle_s / 4, 0.05), 5.0)
        while not self._closed.wait(interval):
            try:
                self.reap()
            except Exception:
                logger.exception("Unloading idle models failed")

    def close(self) -> None:
        """At shutdown: queued work of every model fails fast; nothing is loaded any more."""
        self._closed.set()
        with self._changed:
            self._changed.notify_all()
            loaded = [e.whisper for e in self._entries.values() if e.whisper is not None]
        for whisper in loaded:
            whisper.scheduler.close()

    def statuses(self) -> list[ModelStatus]:
        with self._changed:
            return [
                ModelStatus(
                    id=e.spec.id,
                    source=e.spec.source,
                    default=e.spec.id == self.default,
                    state=e.state,
                    in_use=e.users,
                    loaded_at=e.loaded_at,
                    idle_since=e.idle_since if e.state is ModelState.LOADED else None,
                    loads=e.loads,
                    unloads=e.unloads,
                    memory_mb=None if e.memory_mb is None else round(e.memory_mb, 1),
                    last_error=e.last_error,
                )
                for e in self._entries.values()
            ]


def model_spec(entry: str, device: str) -> ModelSpec:
    """A WHISPER_MODEL(S) entry as a servable model, without loading or downloading it."""
    from app.engine.whisper.sources import BASE_MODEL_BIN_SIZE, BUNDLED_BASE, folder_mb, whisper_name

    name = whisper_name(entry, device)
    path = Path(name.spec).expanduser()
    if name.spec == BUNDLED_BASE:
        size_mb: float | None = BASE_MODEL_BIN_SIZE / 2**20
    else:
        size_mb = folder_mb(path) if path.is_dir() else None
    return ModelSpec(name.display_name, name.spec, name.english_only, size_mb)
