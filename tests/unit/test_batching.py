"""The cross-request batch scheduler: sharing, ordering, out-of-memory halving, failure isolation."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from app.engine.whisper.batching import BatchScheduler, is_out_of_memory
from app.errors import Cancelled, GpuOutOfMemory
from tests.support.waiting import wait_for

CT2_OOM = RuntimeError("CUDA failed with error out of memory")


@dataclass
class Recorder:
    """What a fake model saw: the batches it was called with, in order."""

    batches: list[list[int]] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    fits: int = 1_000  # larger batches raise an out-of-memory error
    poison: int | None = None  # an item that makes any batch holding it fail
    joined: list[int] = field(default_factory=list)  # items that joined a running batch


@dataclass(frozen=True)
class Times:
    """An operation: multiply by ``factor``. Equal factors may share a batch."""

    factor: int
    recorder: Recorder = field(compare=False, hash=False)

    def __call__(self, items: list[int]) -> list[int]:
        self.recorder.gate.wait(timeout=10)
        self.recorder.batches.append(list(items))
        if len(items) > self.recorder.fits:
            raise CT2_OOM
        if self.recorder.poison in items:
            raise ValueError("undecodable window")
        return [item * self.factor for item in items]


@dataclass(frozen=True)
class RefillingTimes(Times):
    """``Times`` as a continuous batch: its oldest item ends first, and each end lets one more join."""

    refills: bool = field(default=True, compare=False)

    def refilled(self, items: list[int], more, deliver) -> None:
        self.recorder.gate.wait(timeout=10)
        self.recorder.batches.append(list(items))
        if self.recorder.poison in items:
            raise ValueError("undecodable window")
        running = list(enumerate(items))
        while running:
            number, item = running.pop(0)
            deliver(number, item * self.factor)
            for joiner in more(1):
                if joiner == self.recorder.poison:
                    raise ValueError("undecodable window")
                self.recorder.joined.append(joiner)
                running.append((len(items) + len(self.recorder.joined) - 1, joiner))


@pytest.fixture
def recorder() -> Recorder:
    recorder = Recorder()
    recorder.gate.set()
    return recorder


@pytest.fixture
def scheduler():
    scheduler = BatchScheduler("test")
    yield scheduler
    scheduler.close()


def _hold(scheduler: BatchScheduler, recorder: Recorder) -> None:
    """Keep the worker busy on a batch of its own, so what is submitted next queues up together."""
    recorder.gate.clear()
    scheduler.submit(Times(1, recorder), [-1], 1)
    wait_for(lambda: scheduler.stats().running_items > 0, 30, "the worker to take the holding batch")


def test_a_lone_job_runs_in_its_own_batch_size(scheduler, recorder):
    assert scheduler.run(Times(10, recorder), list(range(5)), 2) == [0, 10, 20, 30, 40]
    assert recorder.batches == [[0, 1], [2, 3], [4]]


def test_queued_jobs_with_equal_operations_share_batches(scheduler, recorder):
    _hold(scheduler, recorder)
    first = scheduler.submit(Times(10, recorder), [1, 2, 3], 8)
    second = scheduler.submit(Times(10, recorder), [4, 5], 8)
    recorder.gate.set()
    assert first.result() == [10, 20, 30]
    assert second.result() == [40, 50]
    assert recorder.batches[1:] == [[1, 2, 3, 4, 5]]


def test_the_oldest_job_sets_the_batch_size_and_order_is_kept(scheduler, recorder):
    _hold(scheduler, recorder)
    jobs = [scheduler.submit(Times(10, recorder), [n, n + 1, n + 2], 4) for n in (0, 10, 20)]
    recorder.gate.set()
    assert [job.result() for job in jobs] == [[0, 10, 20], [100, 110, 120], [200, 210, 220]]
    assert recorder.batches[1:] == [[0, 1, 2, 10], [11, 12, 20, 21], [22]]


def test_urgent_work_goes_ahead_of_queued_work_and_shares_its_batch(scheduler, recorder):
    _hold(scheduler, recorder)
    files = [scheduler.submit(Times(100, recorder), [n, n + 1], 2) for n in (10, 20)]
    live = scheduler.submit(Times(10, recorder), [1], 2, urgency=1)
    later_live = scheduler.submit(Times(100, recorder), [2], 2, urgency=1)
    most = scheduler.submit(Times(1000, recorder), [3], 2, urgency=2)
    recorder.gate.set()
    assert most.result() == [3000] and live.result() == [10] and later_live.result() == [200]
    assert [job.result() for job in files] == [[1000, 1100], [2000, 2100]]
    # The most urgent first, then the live windows in their order (the second topped up with
    # file windows that decode the same way); file work keeps its order.
    assert recorder.batches[1:] == [[3], [1], [2, 10], [11, 20], [21]]


def test_sharing_can_be_turned_off(recorder):
    scheduler = BatchScheduler("alone", share=False)
    _hold(scheduler, recorder)
    first = scheduler.submit(Times(10, recorder), [1, 2], 8)
    second = scheduler.submit(Times(10, recorder), [3], 8)
    recorder.gate.set()
    assert (first.result(), second.result()) == ([10, 20], [30])
    assert recorder.batches[1:] == [[1, 2], [3]]
    scheduler.close()


def test_different_operations_never_share_a_batch(scheduler, recorder):
    _hold(scheduler, recorder)
    english = scheduler.submit(Times(10, recorder), [1, 2], 8)
    german = scheduler.submit(Times(100, recorder), [3], 8)
    english_again = scheduler.submit(Times(10, recorder), [4], 8)
    recorder.gate.set()
    assert (english.result(), german.result(), english_again.result()) == ([10, 20], [300], [40])
    assert recorder.batches[1:] == [[1, 2, 4], [3]]


def test_waiting_items_join_a_running_batch_until_other_work_waits_ahead(scheduler, recorder):
    _hold(scheduler, recorder)
    first = scheduler.submit(RefillingTimes(10, recorder), [0, 1, 2, 3], 2)
    second = scheduler.submit(RefillingTimes(10, recorder), [10, 11], 2)
    other = scheduler.submit(Times(3, recorder), [7], 2)  # another language, say: it waits ahead of `late`
    late = scheduler.submit(RefillingTimes(10, recorder), [20], 2)
    recorder.gate.set()
    answers = (first.result(), second.result(), other.result(), late.result())
    assert answers == ([0, 10, 20, 30], [100, 110], [21], [200])
    assert recorder.batches[1:] == [[0, 1], [7], [20]]
    assert recorder.joined == [2, 3, 10, 11]
    stats = scheduler.stats()
    assert (stats.joined, stats.items, stats.running_items) == (4, 1 + 8, 0)


def test_a_batch_that_started_short_takes_no_joiners(scheduler, recorder):
    """It ends as before, and what arrived meanwhile gets a full batch of its own."""
    recorder.gate.clear()
    short = scheduler.submit(RefillingTimes(10, recorder), [0], 4)
    wait_for(lambda: scheduler.stats().running_items > 0, 30, "the worker to take the short batch")
    burst = scheduler.submit(RefillingTimes(10, recorder), [1, 2, 3, 4], 4)
    recorder.gate.set()
    assert (short.result(), burst.result()) == ([0], [10, 20, 30, 40])
    assert recorder.batches == [[0], [1, 2, 3, 4]] and not recorder.joined


def test_a_joiner_that_fails_fails_only_its_own_request(scheduler, recorder):
    recorder.poison = 666
    _hold(scheduler, recorder)
    good = scheduler.submit(RefillingTimes(1, recorder), [1, 2], 2)
    bad = scheduler.submit(RefillingTimes(1, recorder), [666], 2)
    recorder.gate.set()
    assert good.result() == [1, 2]  # 1 was handed on before 666 joined; 2 ran again, alone
    with pytest.raises(ValueError, match="undecodable"):
        bad.result()
    assert recorder.batches[1:] == [[1, 2], [2], [666]]


def test_batches_are_not_refilled_when_sharing_is_off(recorder):
    scheduler = BatchScheduler("alone", share=False)
    _hold(scheduler, recorder)
    first = scheduler.submit(RefillingTimes(10, recorder), [1, 2], 8)
    second = scheduler.submit(RefillingTimes(10, recorder), [3], 8)
    recorder.gate.set()
    assert (first.result(), second.result()) == ([10, 20], [30])
    assert recorder.batches[1:] == [[1, 2], [3]] and not recorder.joined
    scheduler.close()


def test_out_of_memory_halves_the_batch_down_to_what_fits(scheduler, recorder):
    recorder.fits = 2
    assert scheduler.run(Times(10, recorder), list(range(8)), 8) == [x * 10 for x in range(8)]
    sizes = [len(b) for b in recorder.batches]
    assert sizes[:3] == [8, 4, 2]
    assert all(size <= 2 for size in sizes[3:])
    assert sorted(x for b in recorder.batches if len(b) <= 2 for x in b) == list(range(8))


def test_the_cap_holds_while_busy_and_lifts_when_idle(scheduler, recorder):
    recorder.fits = 2
    _hold(scheduler, recorder)
    first = scheduler.submit(Times(10, recorder), list(range(4)), 4)
    second = scheduler.submit(Times(10, recorder), list(range(4, 8)), 4)
    recorder.gate.set()
    first.result(), second.result()
    assert [len(b) for b in recorder.batches[1:]] == [4, 2, 2, 2, 2]  # second job starts at the cap
    recorder.batches.clear()
    recorder.fits = 1_000
    scheduler.run(Times(10, recorder), list(range(4)), 4)
    assert recorder.batches == [[0, 1, 2, 3]]


def test_a_window_that_never_fits_is_a_503_for_its_request_only(scheduler, recorder):
    recorder.fits = 0
    with pytest.raises(GpuOutOfMemory) as caught:
        scheduler.run(Times(10, recorder), [1, 2, 3], 4)
    assert caught.value.status_code == 503
    assert caught.value.headers == {"Retry-After": "10"}
    recorder.fits = 1_000
    assert scheduler.run(Times(10, recorder), [7], 4) == [70]  # still serving


def test_a_failing_input_fails_only_its_own_request(scheduler, recorder):
    recorder.poison = 666
    _hold(scheduler, recorder)
    good = scheduler.submit(Times(1, recorder), [1, 2], 8)
    bad = scheduler.submit(Times(1, recorder), [3, 666], 8)
    recorder.gate.set()
    assert good.result() == [1, 2]
    with pytest.raises(ValueError, match="undecodable"):
        bad.result()
    assert recorder.batches[1:] == [[1, 2, 3, 666], [1, 2], [3, 666]]


def test_errors_of_a_lone_job_are_not_retried(scheduler, recorder):
    recorder.poison = 1
    with pytest.raises(ValueError):
        scheduler.run(Times(1, recorder), [1, 2], 2)
    assert recorder.batches == [[1, 2]]


def test_a_cancelled_job_leaves_the_queue(scheduler, recorder):
    _hold(scheduler, recorder)
    dropped = scheduler.submit(Times(1, recorder), [1, 2], 8)
    kept = scheduler.submit(Times(1, recorder), [3], 8)
    scheduler.cancel(dropped)
    assert scheduler.stats().waiting_items == 1
    recorder.gate.set()
    assert kept.result() == [3]
    assert recorder.batches[1:] == [[3]]


def test_stats_count_waiting_and_finished_work(scheduler, recorder):
    _hold(scheduler, recorder)
    job = scheduler.submit(Times(1, recorder), [1, 2, 3], 8)
    stats = scheduler.stats()
    assert (stats.waiting_jobs, stats.waiting_items, stats.running_items) == (1, 3, 1)
    recorder.gate.set()
    job.result()
    stats = scheduler.stats()
    assert (stats.waiting_items, stats.batches, stats.items) == (0, 2, 4)


def test_close_fails_queued_jobs_instead_of_leaving_them_waiting(recorder):
    scheduler = BatchScheduler("closing")
    _hold(scheduler, recorder)
    queued = scheduler.submit(Times(1, recorder), [1], 1)
    threading.Timer(0.05, recorder.gate.set).start()
    scheduler.close()
    with pytest.raises(Cancelled, match="the server is shutting down") as refused:
        queued.result()
    assert refused.value.status_code == 503, "its request gets a clean 503, not a 500"
    with pytest.raises(RuntimeError, match="closed"):
        scheduler.submit(Times(1, recorder), [1], 1)


def test_empty_jobs_finish_at_once(scheduler, recorder):
    assert scheduler.run(Times(1, recorder), [], 4) == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [(CT2_OOM, True), (RuntimeError("CUDA out of memory. Tried to allocate"), True), (MemoryError(), True),
     (RuntimeError("CUBLAS_STATUS_INTERNAL_ERROR"), False)],
)  # fmt: skip
def test_out_of_memory_is_recognised(error, expected):
    assert is_out_of_memory(error) is expected


def test_several_workers_run_batches_at_once(recorder):
    """With two replicas, a second batch starts while the first is still on the model."""
    scheduler = BatchScheduler("replicas", workers=2)
    try:
        recorder.gate.clear()
        first = scheduler.submit(Times(10, recorder), [1, 2], 2)
        second = scheduler.submit(Times(10, recorder), [3, 4], 2)
        # Both batches taken while neither has finished (the gate holds them on the model).
        wait_for(lambda: scheduler.stats().running_items == 4, 30, "both replicas running a batch")
        recorder.gate.set()
        assert first.result() == [10, 20]
        assert second.result() == [30, 40]
        assert scheduler.stats().running_items == 0
    finally:
        scheduler.close()


def test_several_workers_answer_every_item_of_many_jobs(recorder):
    scheduler = BatchScheduler("replicas", workers=3)
    try:
        jobs = [scheduler.submit(Times(2, recorder), list(range(n, n + 7)), 3) for n in range(0, 700, 7)]
        assert [item for job in jobs for item in job.result()] == [2 * n for n in range(700)]
        stats = scheduler.stats()
        assert stats.items == 700
        assert sum(size * count for size, count in stats.batch_sizes.items()) == 700
    finally:
        scheduler.close()
