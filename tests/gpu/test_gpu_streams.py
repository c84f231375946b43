"""side_stream on a CUDA device (skipped without one): off the default stream, finished on leaving."""

from __future__ import annotations

import threading

import pytest

from app.runtime.gpu_streams import side_stream

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_work_runs_beside_the_default_stream_and_is_done_on_leaving():
    seen = {}

    def work(name: str, role: str) -> None:
        base = torch.full((1024, 1024), 1.0 / 1024)
        with side_stream("cuda", role):  # type: ignore[arg-type]
            stream = torch.cuda.current_stream()
            x = base.to("cuda")
            for _ in range(50):
                x = x @ x * 1024 / 1024  # stays all 1/1024: long enough to still run if nobody waited
        # Read from the default stream, which does not wait for side streams by itself.
        seen[name] = (stream, float(x.sum().cpu()))

    threads = [threading.Thread(target=work, args=(n, r)) for n, r in (("a", "requests"), ("b", "requests"))]
    threads.append(threading.Thread(target=work, args=("c", "diarization")))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    default = torch.cuda.default_stream()
    assert all(stream != default for stream, _ in seen.values())
    assert seen["a"][0] == seen["b"][0] != seen["c"][0]  # one stream per role, shared by threads
    assert all(total == pytest.approx(1024.0) for _, total in seen.values())


def test_the_cpu_is_left_alone():
    with side_stream("cpu"):
        assert torch.cuda.current_stream() == torch.cuda.default_stream()
