"""Polling until something holds: a condition, or a job's state (tests and benchmarks alike)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout_s} s")


def wait_for_job(
    http: httpx.Client, job_id: str, condition: Callable[[dict[str, Any]], bool], timeout_s: float = 600
) -> dict[str, Any]:
    """Poll GET /v1/jobs/{id} until ``condition`` holds for the job; the job then."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if condition(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not get there in {timeout_s:g} s: {job}")
        time.sleep(0.05)
