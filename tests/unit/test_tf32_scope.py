"""TF32 is off only while the segmentation network runs on a GPU (pyannet.without_tf32), not for
the rest of the process: the flags are global, and calls on two threads overlap."""

from __future__ import annotations

import threading

import torch

from app.engine.pyannet import without_tf32

GPU, CPU = torch.device("cuda"), torch.device("cpu")


def _flags() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def test_off_while_it_runs_and_as_before_after():
    before = _flags()
    with without_tf32(GPU):
        assert _flags() == (False, False)
    assert _flags() == before
    with without_tf32(CPU):
        assert _flags() == before  # nothing to do on the CPU


def test_overlapping_calls_on_two_threads_restore_the_flags_once_the_last_ends():
    before = _flags()
    first_in, first_may_leave = threading.Event(), threading.Event()
    seen: list[tuple[bool, bool]] = []

    def first() -> None:
        with without_tf32(GPU):
            first_in.set()
            first_may_leave.wait(5)
        seen.append(_flags())  # the second still runs: still off

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in.wait(5)
    with without_tf32(GPU):
        first_may_leave.set()
        thread.join(5)
        assert _flags() == (False, False)
    assert seen == [(False, False)]
    assert _flags() == before


def test_an_error_inside_still_restores_them():
    before = _flags()
    try:
        with without_tf32(GPU):
            raise RuntimeError("the model failed")
    except RuntimeError:
        pass
    assert _flags() == before
