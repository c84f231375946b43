import pytest

from app.errors import GpuOutOfMemory
from app.services.asr import is_out_of_memory, run_in_batches

CT2_OOM = RuntimeError("CUDA failed with error out of memory")


def _runner(fits: int, seen: list[int]):
    def run(batch: list[int]) -> list[int]:
        seen.append(len(batch))
        if len(batch) > fits:
            raise CT2_OOM
        return [x * 10 for x in batch]

    return run


def test_batches_halve_until_they_fit_and_results_keep_their_order():
    seen: list[int] = []
    assert run_in_batches(list(range(10)), 8, _runner(fits=2, seen=seen)) == [x * 10 for x in range(10)]
    assert seen[:3] == [8, 4, 2]
    assert set(seen[3:]) == {2}


def test_no_oom_no_change():
    seen: list[int] = []
    run_in_batches(list(range(10)), 4, _runner(fits=99, seen=seen))
    assert seen == [4, 4, 2]


def test_a_single_window_that_does_not_fit_is_a_503():
    with pytest.raises(GpuOutOfMemory) as caught:
        run_in_batches([1, 2, 3], 4, _runner(fits=0, seen=[]))
    assert caught.value.status_code == 503
    assert caught.value.headers == {"Retry-After": "10"}


def test_other_errors_are_not_retried():
    def broken(batch: list[int]) -> list[int]:
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        run_in_batches([1, 2], 2, broken)


@pytest.mark.parametrize(
    ("error", "expected"),
    [(CT2_OOM, True), (RuntimeError("CUDA out of memory. Tried to allocate"), True), (MemoryError(), True),
     (RuntimeError("CUBLAS_STATUS_INTERNAL_ERROR"), False)],
)  # fmt: skip
def test_out_of_memory_is_recognised(error, expected):
    assert is_out_of_memory(error) is expected
