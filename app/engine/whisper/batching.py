"""Cross-request batching: one thread makes every model call, batching work from all requests.

Request threads prepare the inputs (log-Mel features of their speech windows) and submit
them with an *operation*: a hashable callable that runs one batch, such as "encode, then
beam-search with this prompt". Operations that compare equal can share a call, so windows
from different requests with the same language, task and prompt go through the encoder and
decoder together. The scheduler thread takes the oldest job, fills a batch up to that job's
batch size with items of equal operations in arrival order, runs it, and hands every job its
results. A lone request gets exactly the batches its batch size asks for; concurrent ones
fill the GPU's idle batch slots instead of waiting behind each other. (On GPUs, float16
kernels round differently per batch shape, so a window's text can differ slightly with its
batch-mates; ``share=False`` keeps every batch to one job.)

An operation that ``refills`` (the torch engine's decode) keeps a full batch full: as its
windows end, it asks for more, and items of equal operations that wait at the front of the
queue join the running batch at its next step (continuous batching). Joining stops as soon as
other work waits ahead of them, so a batch of one kind never holds back another kind (or a
live turn).

With ``workers`` above one, that many threads take batches from the one queue, each running
its batch on its own model replica (CTranslate2's ``inter_threads``): on a GPU, one batch's
host-side work (kernel launches, beam bookkeeping, results) overlaps another's device work.
Every model call is still made by a scheduler thread on a whole batch, never by a request
thread, so a model is never used by two requests at once with each other's options (the class
of bug behind whisperX issue #1171 cannot happen), and a failure is confined:
- a GPU out-of-memory error re-runs the same items in halves, down to one item, before the
  job that owns a single item that still does not fit gets a 503; the batch-size cap stays
  halved until the queue drains;
- any other error in a batch shared by several jobs re-runs each job's items alone, so only
  the job whose input fails gets the error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

from app.control.cancellation import CancelToken
from app.errors import Cancelled, GpuOutOfMemory, retry_later

logger = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")

OOM_RETRY_AFTER_SECONDS = 10


class Operation(Hashable, Protocol[In, Out]):
    """Runs one batch. Equal operations must be interchangeable: their items may share a call."""

    def __call__(self, items: list[In], /) -> list[Out]: ...


class RefillingOperation(Operation[In, Out], Protocol):
    """An operation whose batch takes in more items as its own end (continuous batching)."""

    refills: bool  # False: run as a plain operation (an engine that cannot)

    def refilled(
        self, items: list[In], more: Callable[[int], list[In]], deliver: Callable[[int, Out], None], /
    ) -> None:
        """Run ``items``, asking ``more(n)`` for up to ``n`` items whenever places free up, and
        handing each item's output to ``deliver(number, output)`` as it ends; items are numbered
        in the order they came (``items`` first, then each ``more``'s)."""


@dataclass(eq=False)
class Job(Generic[In, Out]):
    """Items one request submitted together; ``result()`` waits for all of them."""

    operation: Operation[In, Out]
    items: list[In]
    batch_size: int
    results: list[Any] = field(init=False)
    urgency: int = 0  # queued ahead of less urgent jobs
    taken: int = 0  # items already handed to a batch
    finished_items: int = 0
    error: BaseException | None = None
    _done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.results = [None] * len(self.items)

    def result(self, cancel: CancelToken | None = None) -> list[Out]:
        if cancel is None:
            self._done.wait()
        else:
            cancel.wait(self._done)
        if self.error is not None:
            raise self.error
        return self.results

    @property
    def done(self) -> bool:
        return self._done.is_set()


@dataclass(frozen=True)
class _Slot:
    job: Job[Any, Any]
    index: int


@dataclass(frozen=True)
class SchedulerStats:
    workers: int
    waiting_jobs: int
    waiting_items: int
    running_items: int
    batches: int
    items: int  # items run, joined ones included
    busy_s: float  # summed over the worker threads: up to ``workers`` seconds per second
    batch_sizes: dict[int, int]  # batches run, by their number of items when they started
    joined: int = 0  # items that joined a running batch as others ended


class BatchScheduler:
    """A worker thread that runs submitted operations in batches shared across requests."""

    def __init__(self, name: str = "model", *, share: bool = True, workers: int = 1) -> None:
        self.name = name
        self.share = share  # False: a batch holds one job's items only
        self.workers = max(1, workers)
        self._queue: deque[Job[Any, Any]] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._cap: int | None = None  # batch-size cap after an out-of-memory error
        self._running_items = 0
        self._batches = 0
        self._items = 0
        self._joined = 0
        self._busy_s = 0.0
        self._batch_sizes: dict[int, int] = {}
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-batches-{index}", daemon=True)
            for index in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, operation: Operation[In, Out], items: list[In], batch_size: int, urgency: int = 0) -> Job[In, Out]:
        """Queue ``items``; the returned job's ``result()`` gives their outputs, in order.

        Work someone is waiting on right now (a live turn) goes ahead of queued file work: jobs
        wait in order of ``urgency`` (higher first), then of arrival."""
        job: Job[In, Out] = Job(operation, list(items), max(1, batch_size), urgency=urgency)
        if not job.items:
            job._done.set()
            return job
        with self._changed:
            if self._closed:
                raise RuntimeError(f"the {self.name} scheduler is closed")
            # After every job at least as urgent, before the first less urgent one.
            queue = self._queue
            position = next((i for i, queued in enumerate(queue) if queued.urgency < job.urgency), len(queue))
            queue.insert(position, job)
            self._changed.notify_all()
        return job

    def run(self, operation: Operation[In, Out], items: list[In], batch_size: int, urgency: int = 0) -> list[Out]:
        return self.submit(operation, items, batch_size, urgency).result()

    def cancel(self, job: Job[Any, Any]) -> None:
        """Drop a job's items that no batch has taken yet (its request failed or gave up)."""
        with self._changed:
            if job in self._queue:
                self._queue.remove(job)
        _fail(job, RuntimeError("cancelled"))

    def stats(self) -> SchedulerStats:
        with self._changed:
            return SchedulerStats(
                workers=self.workers,
                waiting_jobs=len(self._queue),
                waiting_items=sum(len(job.items) - job.taken for job in self._queue),
                running_items=self._running_items,
                batches=self._batches,
                items=self._items,
                busy_s=round(self._busy_s, 3),
                batch_sizes=dict(self._batch_sizes),
                joined=self._joined,
            )

    def close(self, wait_s: float = 1.0) -> None:
        """Stop taking work; jobs still queued fail. Batches in progress get ``wait_s`` to
        finish: their requests are answered already (cancelled at shutdown), and the threads are
        daemons, so a long batch (seconds on a CPU) never holds the process's exit."""
        with self._changed:
            self._closed = True
            abandoned = list(self._queue)
            self._queue.clear()
            self._changed.notify_all()
        for job in abandoned:
            _fail(job, Cancelled("The transcription was cancelled: the server is shutting down."))
        deadline = time.monotonic() + wait_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            started = time.perf_counter()
            joined: list[_Slot] = []  # items that joined this batch while it ran
            try:
                self._execute(batch, joined)
            except BaseException as exc:  # never lose the thread: every job must get an answer
                logger.exception("Batch of %d failed unexpectedly", len(batch) + len(joined))
                for slot in batch + joined:
                    _fail(slot.job, exc)
            with self._changed:
                self._running_items -= len(batch) + len(joined)
                self._batches += 1
                self._items += len(batch) + len(joined)
                self._joined += len(joined)
                self._batch_sizes[len(batch)] = self._batch_sizes.get(len(batch), 0) + 1
                self._busy_s += time.perf_counter() - started

    def _next_batch(self) -> list[_Slot] | None:
        """The oldest job's next items, topped up with items of equal operations from later jobs."""
        with self._changed:
            while not self._queue:
                if self._closed:
                    return None
                if self._running_items == 0:
                    self._cap = None  # idle: the memory pressure that forced a smaller batch has passed
                self._changed.wait()
            head = self._queue[0]
            limit = min(head.batch_size, self._cap or head.batch_size)
            batch: list[_Slot] = []
            for job in list(self._queue):
                if len(batch) == limit:
                    break
                if job is not head and (not self.share or job.operation != head.operation):
                    continue
                self._take(job, limit - len(batch), batch)
            self._running_items += len(batch)
            return batch

    def _take(self, job: Job[Any, Any], count: int, into: list[_Slot]) -> None:
        """Up to ``count`` of ``job``'s items not yet taken (the job leaves the queue with its last)."""
        take = min(count, len(job.items) - job.taken)
        into.extend(_Slot(job, index) for index in range(job.taken, job.taken + take))
        job.taken += take
        if job.taken == len(job.items):
            self._queue.remove(job)

    def _take_more(self, operation: Operation[Any, Any], count: int) -> list[_Slot]:
        """Up to ``count`` items of ``operation`` from the front of the queue, for a running batch:
        none past the first job of another operation (it waits ahead of them: the batch ends)."""
        taken: list[_Slot] = []
        with self._changed:
            for job in list(self._queue):
                if len(taken) == count or self._closed or job.operation != operation:
                    break
                self._take(job, count - len(taken), taken)
            self._running_items += len(taken)
        return taken

    def _execute(self, batch: list[_Slot], joined: list[_Slot]) -> None:
        live = [slot for slot in batch if slot.job.error is None]
        if not live:
            return
        head = live[0].job
        operation = head.operation
        # Only a batch that started full takes joiners: one that started short (the queue had no
        # more) ends as before, so a burst that arrives meanwhile gets a full batch of its own
        # instead of trickling through a small one.
        full = len(live) >= min(head.batch_size, self._cap or head.batch_size)
        if self.share and full and getattr(operation, "refills", False):
            self._execute_refilled(cast(RefillingOperation[Any, Any], operation), live, joined)
            return
        try:
            outputs = operation([slot.job.items[slot.index] for slot in live])
        except Exception as exc:
            self._recover(live, exc, joined)
            return
        for slot, output in zip(live, outputs, strict=True):
            _deliver(slot, output)

    def _execute_refilled(
        self, operation: RefillingOperation[Any, Any], batch: list[_Slot], joined: list[_Slot]
    ) -> None:
        slots = list(batch)  # by the operation's numbering: the batch, then each joiner
        delivered: set[int] = set()

        def more(count: int) -> list[Any]:
            taken = self._take_more(operation, count)
            slots.extend(taken)
            joined.extend(taken)
            return [slot.job.items[slot.index] for slot in taken]

        def deliver(number: int, output: Any) -> None:
            delivered.add(number)
            _deliver(slots[number], output)

        try:
            operation.refilled([slot.job.items[slot.index] for slot in batch], more, deliver)
        except Exception as exc:
            self._recover([slot for number, slot in enumerate(slots) if number not in delivered], exc, joined)

    def _recover(self, batch: list[_Slot], exc: Exception, joined: list[_Slot]) -> None:
        jobs = list(dict.fromkeys(slot.job for slot in batch))
        if is_out_of_memory(exc):
            if len(batch) == 1:
                _fail(
                    batch[0].job,
                    GpuOutOfMemory(
                        "The GPU ran out of memory even for a single 30 s window; retry shortly.",
                        headers=retry_later(OOM_RETRY_AFTER_SECONDS),
                    ),
                    cause=exc,
                )
                return
            with self._changed:
                self._cap = size = min(len(batch) // 2, self._cap or len(batch))
            logger.warning("GPU out of memory with a batch of %d; retrying in batches of %d", len(batch), size)
            release_cached_gpu_memory()
            first = 0
            while first < len(batch):  # the cap may shrink again inside a piece
                piece = batch[first : first + (self._cap or size)]
                self._execute(piece, joined)
                first += len(piece)
        elif len(jobs) > 1:
            logger.warning("A shared batch failed (%s); running each request's items alone", exc)
            for job in jobs:
                self._execute([slot for slot in batch if slot.job is job], joined)
        else:
            _fail(jobs[0], exc)


def _deliver(slot: _Slot, output: Any) -> None:
    job = slot.job
    if job.error is not None:
        return
    job.results[slot.index] = output
    job.finished_items += 1
    if job.finished_items == len(job.items):
        job._done.set()


def _fail(job: Job[Any, Any], error: BaseException, *, cause: BaseException | None = None) -> None:
    if job.done:
        return
    if cause is not None:
        error.__cause__ = cause
    job.error = error
    job._done.set()


def is_out_of_memory(exc: BaseException) -> bool:
    # CTranslate2 raises RuntimeError("... CUDA failed with error out of memory");
    # torch raises torch.cuda.OutOfMemoryError, whose message also says so.
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


def release_cached_gpu_memory() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


__all__ = ["BatchScheduler", "Job", "Operation", "RefillingOperation", "SchedulerStats", "is_out_of_memory"]
