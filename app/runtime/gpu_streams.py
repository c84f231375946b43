"""torch's GPU work on streams of the service's own, never on CUDA's legacy default stream.

CTranslate2 (Whisper) launches its kernels on the legacy default stream, and work on that
stream waits for, and holds up, everything on the other blocking streams of the device. So
torch work left on it (the VAD, the features, the aligner, the diarizer, model loads) queued
behind every decoding step in flight. Measured on the H100 with two replicas decoding
(bench/stream_contention.py, two runs on 2026-11-24): a small matmul took 0.4–3.3 ms (p90
7–13 ms) on the default stream and 0.14 ms on a side stream; 200 host-to-device copies (a
model load) 0.25–1.8 s against 10–13 ms.

Two streams, by role: ``requests`` (a request's VAD, features and alignment, start-up loads
and warmup) and ``diarization`` (the diarizer beside the words), so those two overlap. Not one
per thread: torch's caching allocator keeps freed memory per stream, and a stream for each of
the request threads held 40 GB on the H100 where one held 4 GB.

torch's side streams are non-blocking, so nothing orders them against CTranslate2's work:
``side_stream`` waits for the block's work before it returns, so what a block hands to
another thread or to CTranslate2 is complete.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

Role = Literal["requests", "diarization"]

_streams: dict[tuple[str, Role], Any] = {}
_lock = threading.Lock()


@contextmanager
def side_stream(device: str | None, role: Role = "requests") -> Iterator[None]:
    """The block's torch CUDA work goes to ``role``'s stream and is finished on leaving; off CUDA, nothing changes."""
    if not device or not device.startswith("cuda"):
        yield
        return
    import torch

    with _lock:
        stream = _streams.get((device, role))
        if stream is None:
            stream = _streams[(device, role)] = torch.cuda.Stream(device=device)
    with torch.cuda.stream(stream):
        yield
        done = torch.cuda.Event()
        done.record(stream)
    done.synchronize()  # this block's work (and what other threads queued before it), not later work
