"""Throughput benchmark: direct WhisperX vs the service, concurrency, stages, memory growth.

    python -m bench.throughput --model DIR --device cuda [--max-new-tokens 128]
    python -m bench.throughput --smoke        # CPU, bundled tiny.en, small sizes: a quick run, no targets

Sections (each prints a table):
1. Direct vs service, alternating, per batch size: ``whisperx.load_model(...).transcribe`` on the
   waveform against POST /transcribe of the same file (same model, compute type, batch size,
   language, beam 5; ``word_timestamps=false`` so both do the same work). Realtime factors and
   their ratio (service / direct).
2. Concurrency: N clients each sending the short file at once, against the same N files one
   after another: aggregate realtime factor, p50/p95 latency, ratio to sequential.
3. Per-stage seconds the service reports for the long file.
4. Memory over many requests: server RSS and GPU memory (nvidia-smi, per process).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from app.services.audio import read_pcm16_wav
from bench.server import RunningServer, post_audio, running_server, write_tiled_sample


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def direct_vs_service(args: argparse.Namespace, server: RunningServer, long_file: Path) -> dict[str, Any]:
    import whisperx

    audio = read_pcm16_wav(long_file)
    seconds = audio.shape[0] / 16000
    direct = whisperx.load_model(args.model_location, args.device, compute_type=args.compute_type, language="en")
    if args.max_new_tokens:
        direct.model.max_length = args.max_new_tokens + 2
    direct.transcribe(audio[: 30 * 16000], batch_size=1, language="en")  # its own warm-up
    rows, last_timings = [], {}
    with server.client() as client:
        for batch in args.batch_sizes:
            direct_times, service_times = [], []
            for _ in range(args.repeats):  # alternating, so drift affects both alike
                started = time.perf_counter()
                direct.transcribe(audio, batch_size=batch, language="en")
                direct_times.append(time.perf_counter() - started)
                elapsed, body = post_audio(
                    client, long_file, language="en", batch_size=str(batch), word_timestamps="false", diarize="false"
                )
                service_times.append(elapsed)
                last_timings = body["timings"]
            direct_rtf = seconds / statistics.median(direct_times)
            service_rtf = seconds / statistics.median(service_times)
            rows.append([str(batch), f"{direct_rtf:.0f}x", f"{service_rtf:.0f}x", f"{service_rtf / direct_rtf:.3f}"])
    print(f"## Direct WhisperX vs service, {seconds:.0f} s of speech, median of {args.repeats}")
    _table(["batch", "direct RTF", "service RTF", "service/direct"], rows)
    return last_timings


def concurrency(args: argparse.Namespace, server: RunningServer, short_file: Path) -> None:
    seconds = read_pcm16_wav(short_file).shape[0] / 16000
    rows = []
    with server.client() as client:
        for clients in args.clients:
            started = time.perf_counter()
            sequential = [post_audio(client, short_file, language="en")[0] for _ in range(clients)]
            sequential_wall = time.perf_counter() - started

            def one(_: int) -> float:
                with server.client() as own:
                    return post_audio(own, short_file, language="en")[0]

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=clients) as pool:
                latencies = list(pool.map(one, range(clients)))
            wall = time.perf_counter() - started
            rows.append(
                [
                    str(clients),
                    f"{clients * seconds / wall:.1f}x",
                    f"{_percentile(latencies, 50):.2f}",
                    f"{_percentile(latencies, 95):.2f}",
                    f"{clients * seconds / sequential_wall:.1f}x",
                    f"{sequential_wall / wall:.2f}",
                    f"{statistics.median(sequential):.2f}",
                ]
            )
    print(f"## Concurrency: each client sends one {seconds:.0f} s file")
    _table(
        ["clients", "aggregate RTF", "p50 s", "p95 s", "sequential RTF", "concurrent/sequential", "alone s"],
        rows,
    )


def stages(timings: dict[str, float]) -> None:
    print("## Service stages for the long file (seconds)")
    keys = [
        k for k in ("decode", "vad", "language_detection", "asr", "alignment", "diarization", "total") if k in timings
    ]
    _table(keys, [[f"{timings[k]:.3f}" for k in keys]])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _gpu_mb(pid: int) -> float:
    if not shutil.which("nvidia-smi"):
        return float("nan")
    out = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    used = [float(m) for p, m in (line.split(",") for line in out.strip().splitlines() if "," in line) if int(p) == pid]
    return sum(used) if used else float("nan")


def memory(args: argparse.Namespace, server: RunningServer, short_file: Path) -> None:
    pid = server.process.pid
    rss, gpu = [], []
    with server.client() as client:
        for _ in range(args.memory_requests):
            post_audio(client, short_file, language="en")
            rss.append(_rss_mb(pid))
            gpu.append(_gpu_mb(pid))
    settle = min(5, len(rss) - 1)

    def growth(series: list[float]) -> str:
        base = statistics.mean(series[:settle]) if settle else series[0]
        return f"{(series[-1] - base) / base * 100:+.1f}%" if base == base and base > 0 else "n/a"

    print(f"## Memory over {args.memory_requests} requests (growth: last vs mean of the first {settle})")
    _table(
        ["", "first MB", "last MB", "max MB", "growth"],
        [
            ["process RSS", f"{rss[0]:.0f}", f"{rss[-1]:.0f}", f"{max(rss):.0f}", growth(rss)],
            ["GPU (nvidia-smi)", f"{gpu[0]:.0f}", f"{gpu[-1]:.0f}", f"{max(gpu):.0f}", growth(gpu)],
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="WHISPER_MODEL for the service (a CTranslate2 directory for direct runs)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--compute-type", default="float16")
    parser.add_argument("--batch-sizes", default="8,16,32")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--long-seconds", type=float, default=600.0)
    parser.add_argument("--short-seconds", type=float, default=60.0)
    parser.add_argument("--clients", default="1,4,8,16")
    parser.add_argument("--memory-requests", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vad-method", default="pyannote", help="pyannote matches direct WhisperX")
    parser.add_argument("--smoke", action="store_true", help="CPU, bundled tiny.en, tiny sizes")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.device, args.compute_type = "bundled-tiny.en", "cpu", "int8"
        args.batch_sizes, args.clients, args.long_seconds, args.short_seconds = "4", "1,2", 60.0, 30.0
        args.memory_requests, args.repeats = 4, 1
    if not args.model:
        parser.error("--model is required (or --smoke)")
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.clients = [int(c) for c in args.clients.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="throughput-"))
    long_file = write_tiled_sample(workdir / "long.wav", args.long_seconds)
    short_file = write_tiled_sample(workdir / "short.wav", args.short_seconds)
    env = {
        "WHISPER_MODEL": args.model,
        "DEVICE": args.device,
        "COMPUTE_TYPE": args.compute_type,
        "BATCH_SIZE": str(min(args.batch_sizes)),
        "MAX_BATCH_SIZE": str(max(64, *args.batch_sizes)),
        "MAX_PENDING_REQUESTS": str(max(32, *args.clients)),
        "VAD_METHOD": args.vad_method,
        "ENABLE_ALIGNMENT": "false",
        "ENABLE_DIARIZATION": "false",
        "MODEL_CACHE_DIR": str(workdir / "models"),
        "CUDA_CACHE_PATH": os.environ.get("CUDA_CACHE_PATH", str(workdir / "cuda-cache")),
        "HF_HUB_OFFLINE": "1",
    }
    if args.max_new_tokens:
        env["MAX_NEW_TOKENS"] = str(args.max_new_tokens)
    from app.services.model_sources import resolve_whisper_source

    args.model_location = resolve_whisper_source(args.model, args.device, workdir / "models").location
    with running_server(env, workdir / "server.log") as server:
        print(f"# {server.health.get('model')} on {server.health.get('gpu') or 'cpu'} ({args.compute_type})\n")
        timings = direct_vs_service(args, server, long_file)
        concurrency(args, server, short_file)
        stages(timings)
        memory(args, server, short_file)


if __name__ == "__main__":
    main()
