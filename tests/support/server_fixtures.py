"""The real server for a test: ``tests.support.server.running_server``, failing the test when it does not start."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.server import RunningServer, ServerDidNotStart, running_server


@contextmanager
def server_or_fail(
    env: dict[str, str], log: Path, timeout_s: float, *, every_stage: bool = True
) -> Iterator[RunningServer]:
    """A failed start fails the test with the server's own reason (its log's tail), not an error.

    ``every_stage``: the test gets the server once the diarizer is in too (it loads after ready)."""
    try:
        with running_server(env, log, timeout_s=timeout_s, every_stage=every_stage) as running:
            yield running
    except ServerDidNotStart as exc:
        pytest.fail(str(exc))
