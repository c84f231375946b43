"""Capacity the way users load a server, next to the engine alone measured in the same run.

    python -m bench.capacity --model DIR --device cuda --max-new-tokens 128 [--batch-size 32] [--files 128]
    python -m bench.capacity --smoke      # CPU, bundled tiny.en, small sizes: a quick run, no targets

1. **Engine alone**: the same model loaded in this process (the engine the server will use),
   decoding batches of ``--batch-size`` 30 s windows of the sample call, features precomputed:
   windows per second. Measured first, then freed, so the server has the device to itself.
2. **Backlog**: ``--files`` one-minute files (each cut at a different offset of the tiled
   sample, so none is a cache hit) submitted to ``/v1/jobs`` by ``--submitters`` threads at
   once, then drained. Audio seconds per second from the first submission to the last job
   done, the seconds a submission took, and the slowest ``/health`` answer meanwhile.
3. **Open loop**: ``/transcribe`` requests of one-minute files arriving at a set rate whatever
   the answers do (a client population, not a fixed number of clients), for
   ``--step-seconds`` per step, the rate stepped up by ``--step`` until p95 latency passes
   ``--p95-bound-s`` or a request fails. Each step: offered and served audio per second,
   p50/p95 latency.

The service decodes VAD chunks (up to 30 s each), so a window holds less audio there than in
the engine-alone batches: the comparison is made in **windows per second** (the scheduler's
own count, from ``/health``), beside audio seconds per second. Text only, one pass per window
(``temperature[]=0``), English, no word times, no speakers: the engine's work and nothing else.
Random weights never end a window early: ``--max-new-tokens`` bounds every window (128 ≈ a real
30 s window's text), in the engine alone and in the server alike.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np

from bench.throughput import WHISPER_ONLY, SchedulerDelta, scheduler_counters
from tests.support.server import RunningServer, health_probe, running_server, write_tiled_sample
from tests.support.waiting import wait_for_job

TARGET = 0.9  # of the engine alone: the bound for the backlog and the open loop


@dataclass
class Served:
    """What one phase got from the server."""

    what: str
    audio_s: float
    wall_s: float
    windows: int
    mean_batch: float
    extra: str = ""

    @property
    def audio_rate(self) -> float:
        return self.audio_s / self.wall_s

    @property
    def window_rate(self) -> float:
        return self.windows / self.wall_s


def engine_alone(args: argparse.Namespace) -> float:
    """Windows per second of the engine alone at ``--batch-size`` (median of ``--repeats``)."""
    from app.engine.whisper.stage import Whisper
    from bench.decode_probe import _features, _load, probe

    probe_args = SimpleNamespace(
        model=args.model, device=args.device, compute_type=args.compute_type, max_new_tokens=args.max_new_tokens
    )
    engine = _load(args.engine, probe_args)  # type: ignore[arg-type]
    row = probe(engine, _features(Whisper(engine), args.batch_size), args.repeats, args.engine)
    del engine
    if args.device == "cuda":
        import torch

        torch.cuda.empty_cache()
    windows_per_s = args.batch_size / row["s/batch"]
    print(
        f"engine alone ({args.engine}, batch {args.batch_size}): {row['s/batch']:.3f} s a batch, "
        f"{row['tokens/window']:.0f} tokens a window, {windows_per_s:.1f} windows/s "
        f"({windows_per_s * 30:.0f}x on full 30 s windows)",
        flush=True,
    )
    return windows_per_s


def backlog(server: RunningServer, files: list[Path], seconds: float, submitters: int) -> Served:
    """Every file submitted as a job at once, then drained."""
    with httpx.Client(base_url=server.url, timeout=600) as http, health_probe(server) as health:
        before = scheduler_counters(http)
        submit_s: list[float] = []

        def submit(path: Path) -> str:
            started = time.perf_counter()
            with path.open("rb") as f:
                reply = http.post("/v1/jobs", files={"file": (path.name, f, "audio/wav")}, data=WHISPER_ONLY)
            reply.raise_for_status()
            submit_s.append(time.perf_counter() - started)
            return str(reply.json()["id"])

        started = time.perf_counter()
        with ThreadPoolExecutor(submitters) as pool:
            ids = list(pool.map(submit, files))
        submitted = time.perf_counter() - started
        states = [
            wait_for_job(http, job, lambda j: j["state"] in ("succeeded", "failed", "cancelled"))["state"]
            for job in ids
        ]
        wall = time.perf_counter() - started
        delta = SchedulerDelta.between(before, scheduler_counters(http))
    done = states.count("succeeded")
    extra = (
        f"{done}/{len(ids)} done; all submitted in {submitted:.1f} s "
        f"(p50 {statistics.median(submit_s):.2f} s a submission); "
        f"slowest /health {max(health, default=0) * 1000:.0f} ms"
    )
    return Served(f"backlog of {len(files)} jobs", done * seconds, wall, delta.windows, delta.mean_batch, extra)


def open_loop_step(
    server: RunningServer, files: list[Path], seconds: float, per_s: float, step_s: float
) -> tuple[Served, float, int]:
    """Requests arriving every 1/``per_s`` seconds for ``step_s``; (served, p95 latency, failures)."""
    count = max(2, round(per_s * step_s))
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    with httpx.Client(base_url=server.url, timeout=600, limits=httpx.Limits(max_connections=512)) as http:
        before = scheduler_counters(http)
        start = time.perf_counter()

        def one(index: int) -> None:
            nonlocal failures
            time.sleep(max(0.0, start + index / per_s - time.perf_counter()))
            began = time.perf_counter()
            path = files[index % len(files)]
            with path.open("rb") as f:
                reply = http.post("/transcribe", files={"file": (path.name, f, "audio/wav")}, data=WHISPER_ONLY)
            with lock:
                if reply.status_code == 200:
                    latencies.append(time.perf_counter() - began)
                else:
                    failures += 1

        with ThreadPoolExecutor(min(count, 512)) as pool:
            list(pool.map(one, range(count)))
        wall = time.perf_counter() - start
        delta = SchedulerDelta.between(before, scheduler_counters(http))
    p50 = statistics.median(latencies) if latencies else float("nan")
    p95 = float(np.percentile(latencies, 95)) if latencies else float("inf")
    served = Served(
        f"open loop, {per_s * seconds:.0f} audio s/s offered",
        len(latencies) * seconds,
        wall,
        delta.windows,
        delta.mean_batch,
        f"p50 {p50:.2f} s, p95 {p95:.2f} s, {failures} refused or failed",
    )
    return served, p95, failures


def _row(served: Served, engine_windows_per_s: float) -> list[str]:
    share = served.window_rate / engine_windows_per_s
    return [
        served.what,
        f"{served.audio_rate:.0f}x",
        f"{served.window_rate:.1f}",
        f"{share:.0%}",
        f"{served.mean_batch:.1f}",
        served.extra,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bundled-tiny.en")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--engine", default="torch", help="ENGINE of the server, and the engine measured alone")
    parser.add_argument("--compute-type", default="float16")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--files", type=int, default=128, help="one-minute files in the backlog")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per file")
    parser.add_argument("--submitters", type=int, default=8, help="threads submitting the backlog")
    parser.add_argument("--job-concurrency", default="", help="JOB_CONCURRENCY (empty: the server's default)")
    parser.add_argument("--step-seconds", type=float, default=30.0, help="length of each open-loop step")
    parser.add_argument("--step", type=float, default=1.5, help="factor between open-loop rates")
    parser.add_argument("--p95-bound-s", type=float, default=0.0, help="0: 4x a lone request's time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="CPU, bundled tiny.en, small sizes")
    args = parser.parse_args()
    if args.smoke:
        args.device, args.engine, args.compute_type, args.batch_size = "cpu", "ctranslate2", "int8", 4
        args.files, args.seconds, args.step_seconds, args.step, args.repeats = 4, 20.0, 6.0, 2.0, 1
    workdir = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    files = [write_tiled_sample(workdir / f"file-{n}.wav", args.seconds, offset=7.3 * n) for n in range(args.files)]

    engine_windows_per_s = engine_alone(args)
    env = {
        "WHISPER_MODEL": args.model,
        "DEVICE": args.device,
        "ENGINE": args.engine,
        "COMPUTE_TYPE": args.compute_type,
        "BATCH_SIZE": str(args.batch_size),
        "MAX_BATCH_SIZE": str(max(64, args.batch_size)),
        "MAX_NEW_TOKENS": str(args.max_new_tokens),
        "MAX_PENDING_REQUESTS": "1024",
        "ENABLE_ALIGNMENT": "false",
        "ENABLE_DIARIZATION": "false",
        "MODEL_CACHE_DIR": str(workdir / "models"),
        "JOBS_DIR": str(workdir / "jobs"),
        "CUDA_CACHE_PATH": str(workdir / "cuda-cache"),
        "HF_HUB_OFFLINE": "1",
        **({"JOB_CONCURRENCY": args.job_concurrency} if args.job_concurrency else {}),
    }
    rows: list[list[str]] = []
    with running_server(env, workdir / "server.log") as server:
        health = server.health
        print(
            f"server: {health.get('engine')} on {health.get('gpu') or 'cpu'}, ready after {server.ready_after_s:.1f} s",
            flush=True,
        )
        with httpx.Client(base_url=server.url, timeout=600) as http:  # one request alone: the latency bound's base
            started = time.perf_counter()
            with files[0].open("rb") as f:
                http.post(
                    "/transcribe", files={"file": ("alone.wav", f, "audio/wav")}, data=WHISPER_ONLY
                ).raise_for_status()
            alone_s = time.perf_counter() - started
        bound = args.p95_bound_s or 4 * alone_s
        print(f"one request alone: {alone_s:.2f} s; open-loop p95 bound {bound:.2f} s", flush=True)

        drained = backlog(server, files, args.seconds, args.submitters)
        rows.append(_row(drained, engine_windows_per_s))
        print("| " + " | ".join(rows[-1]) + " |", flush=True)

        per_s = 0.25 * engine_windows_per_s * 30 / args.seconds  # requests a second: a quarter of the engine
        best: Served | None = None
        while True:
            served, p95, failures = open_loop_step(server, files, args.seconds, per_s, args.step_seconds)
            rows.append(_row(served, engine_windows_per_s))
            print("| " + " | ".join(rows[-1]) + " |", flush=True)
            if p95 > bound or failures:
                break
            best = served if best is None or served.window_rate > best.window_rate else best
            if per_s * args.seconds > 2 * engine_windows_per_s * 30:
                break
            per_s *= args.step

    print(
        f"\n## Capacity: {args.model}, {args.engine} on {args.device}, batch {args.batch_size}, "
        f"max_new_tokens {args.max_new_tokens}\n"
    )
    header = ["load", "audio s/s", "windows/s", "of engine alone", "mean batch", "detail"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    print(
        f"| engine alone | {engine_windows_per_s * 30:.0f}x (full windows) | {engine_windows_per_s:.1f} "
        f"| 100% | {args.batch_size} | |"
    )
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if not args.smoke:
        print(f"\ntarget: backlog and open-loop capacity >= {TARGET:.0%} of the engine alone (windows/s)")
        print(f"- backlog: {drained.window_rate / engine_windows_per_s:.0%}")
        peak = best.window_rate / engine_windows_per_s if best is not None else float("nan")
        print(f"- open loop, the highest rate within the p95 bound: {peak:.0%}")


if __name__ == "__main__":
    main()
