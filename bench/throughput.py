"""Throughput benchmark: direct WhisperX vs the service, concurrency, stages, memory growth.

    python -m bench.throughput --model DIR --device cuda [--max-new-tokens 128]
    python -m bench.throughput --smoke        # CPU, bundled tiny.en, small sizes: a quick run, no targets

Audio is the pyannote sample call tiled: one long file (10 min) and a set of 1-minute files,
each cut from a different offset so that no two have the same speech windows.

Sections (each prints a table):
1. Direct vs service, alternating, per batch size: ``whisperx.load_model(...).transcribe`` on the
   waveform against POST /transcribe of the same file (same model, compute type, batch size,
   language, beam 5; ``word_timestamps=false``, ``diarize=false`` so both do the same work).
   Realtime factors, their ratio (service / direct), and whether the text is the same.
2. Concurrency: N clients each sending a different 1-minute file at once, against the same N
   files one after another. Aggregate realtime factor, p50/p95 latency, ratio to sequential,
   whether every file got the same text both ways, the mean size of the batches the Whisper
   scheduler ran, how busy it was, and the slowest /health answer while loaded.
   The same with word times (``words``), and with word times and speakers (``full``).
3. Per-stage seconds for the long file with every stage on (word times, diarization when a
   diarizer is loaded): where the time goes.
4. Memory over many requests: process RSS, device memory, torch's allocator.
5. Restart (``start``): a second server process on the same, now warm, CUDA JIT cache: process
   start → ready, and its first request against its steady state.

Word times come from Whisper unless ``--aligner random`` loads a randomly initialised aligner
with the shape of WhisperX's English one (tests/support/random_aligner.py), which costs what the real
one costs. The run ends with the issue's targets against the figures it measured.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.engine.audio import SAMPLE_RATE, read_pcm16_wav
from app.engine.whisper import fallback
from tests.support.server import RunningServer, health_probe, post_audio, running_server, write_tiled_sample

# Throughput runs compare Whisper alone: the direct baseline has no word times and no speakers.
# One decoding pass per window (temperature [0]), as the direct path decodes: random weights fail
# every check and would be decoded at all six temperatures; real speech rarely fails one (what
# the checks cost and catch: bench/invented_text.py).
WHISPER_ONLY = {"language": "en", "word_timestamps": "false", "diarize": "false", "temperature[]": "0"}
# What the concurrency sections send: text only, with word times, with word times and speakers.
WORKLOADS = {
    "concurrency": ("text only", WHISPER_ONLY),
    "words": ("text and word times", {**WHISPER_ONLY, "word_timestamps": "true"}),
    "full": ("text, word times and speakers", {**WHISPER_ONLY, "word_timestamps": "true", "diarize": "true"}),
}


@dataclass
class Target:
    what: str
    goal: str
    measured: str = "not run"


def _seconds(path: Path) -> float:
    return read_pcm16_wav(path).shape[0] / SAMPLE_RATE


def _texts(body: dict[str, Any]) -> list[str]:
    return [segment["text"] for segment in body["segments"]]


def _same(texts: list[str], reference: list[str]) -> str:
    if len(texts) != len(reference):
        return f"{len(texts)} vs {len(reference)} segments"
    return f"{sum(a == b for a, b in zip(texts, reference, strict=True))}/{len(reference)}"


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(flush=True)


def scheduler_counters(client: httpx.Client) -> dict[str, Any]:
    """The Whisper scheduler's counters, as /health gives them (``SchedulerDelta`` takes two)."""
    batching: dict[str, Any] = client.get("/health").json()["queue"]["batching"]
    return batching


@dataclass
class SchedulerDelta:
    batches: int
    windows: int
    busy_s: float
    model_s: dict[str, float]
    decoded_windows: int
    decoded_tokens: int
    joined: int  # windows that took an ended window's place in a running batch

    @classmethod
    def between(cls, before: dict[str, Any], after: dict[str, Any]) -> SchedulerDelta:
        return cls(
            after["batches"] - before["batches"],
            after["windows"] - before["windows"],
            after["busy_s"] - before["busy_s"],
            {k: after["model_s"][k] - before["model_s"].get(k, 0.0) for k in after["model_s"]},
            after["decoded_windows"] - before["decoded_windows"],
            after["decoded_tokens"] - before["decoded_tokens"],
            after.get("joined_windows", 0) - before.get("joined_windows", 0),
        )

    @property
    def mean_batch(self) -> float:
        """Windows a batch started with (joiners come on top, in ``joined``)."""
        return (self.windows - self.joined) / self.batches if self.batches else float("nan")

    @property
    def tokens_per_window(self) -> float:
        """What each window cost the decoder: compare speeds only at equal tokens per window."""
        return self.decoded_tokens / self.decoded_windows if self.decoded_windows else float("nan")


Direct = Callable[[np.ndarray, int], list[str]]  # (audio, batch size) -> the segments' texts


def direct_whisperx(args: argparse.Namespace) -> Direct:
    """WhisperX's own pipeline: what the CTranslate2 engine is measured against."""
    import whisperx

    from app.engine.whisper.ctranslate2 import ctranslate2_max_length

    model = whisperx.load_model(args.model_location, args.device, compute_type=args.compute_type, language="en")
    if args.max_new_tokens:
        model.model.max_length = ctranslate2_max_length(args.max_new_tokens)
    return lambda audio, batch: [
        s["text"] for s in model.transcribe(audio, batch_size=batch, language="en")["segments"]
    ]


def direct_torch(args: argparse.Namespace) -> Direct:
    """The torch engine called in this process (VAD, then the Whisper stage): no service around it."""
    from app.engine.decoding import Decoding
    from app.engine.vad import load_speech_detector
    from app.engine.whisper.stage import Whisper
    from app.engine.whisper.torch_engine import TorchEngine

    engine = TorchEngine.load(
        args.source, device=args.device, compute_type=args.compute_type, cpu_threads=0,
        download_root=str(args.workdir / "direct"), hf_token=None, max_new_tokens=args.max_new_tokens,
    )  # fmt: skip
    whisper = Whisper(engine)
    vad = load_speech_detector(args.vad_method, args.device)

    def transcribe(audio: np.ndarray, batch: int) -> list[str]:
        segments = whisper.transcribe(audio, vad(audio), Decoding("en", "transcribe", None, fallback.ONCE, batch))
        return [s.text for s in segments]

    return transcribe


def direct_vs_service(args: argparse.Namespace, server: RunningServer, long_file: Path) -> dict[int, float]:
    """The table; returns service/direct per batch size."""
    audio = read_pcm16_wav(long_file)
    seconds = audio.shape[0] / SAMPLE_RATE
    engine = server.health["engine"]
    direct = direct_torch(args) if engine == "torch" else direct_whisperx(args)
    try:
        return _direct_table(args, server, long_file, audio, seconds, engine, direct)
    finally:  # the direct pipeline's GPU memory goes back: the server needs it for the next sections
        del direct
        gc.collect()
        import torch

        torch.cuda.empty_cache()


def _direct_table(
    args: argparse.Namespace,
    server: RunningServer,
    long_file: Path,
    audio: np.ndarray,
    seconds: float,
    engine: str,
    direct: Direct,
) -> dict[int, float]:
    rows, ratios = [], {}
    first_direct: list[str] | None = None
    with server.client() as client:
        for batch in args.batch_sizes:
            form = {**WHISPER_ONLY, "batch_size": str(batch)}
            # One unmeasured round each: kernels are chosen (and JIT-compiled) per batch shape.
            direct(audio, batch)
            post_audio(client, long_file, **form)
            direct_times, service_times = [], []
            for _ in range(args.repeats):  # alternating, so drift affects both alike
                started = time.perf_counter()
                direct_texts = direct(audio, batch)
                direct_times.append(time.perf_counter() - started)
                before = scheduler_counters(client)
                elapsed, body = post_audio(client, long_file, **form)
                delta = SchedulerDelta.between(before, scheduler_counters(client))
                service_times.append(elapsed)
            first_direct = first_direct or direct_texts
            direct_rtf = seconds / statistics.median(direct_times)
            service_rtf = seconds / statistics.median(service_times)
            ratios[batch] = service_rtf / direct_rtf
            t = body["timings"]
            rows.append(
                [
                    str(batch),
                    f"{direct_rtf:.0f}x",
                    f"{service_rtf:.0f}x",
                    f"{service_rtf / direct_rtf:.3f}",
                    _same(_texts(body), direct_texts),
                    _same(direct_texts, first_direct),
                    f"{t.get('decode', 0):.3f}",
                    f"{t.get('vad', 0):.3f}",
                    f"{t.get('features', 0):.3f}",
                    f"{delta.model_s.get('encode', 0):.3f}",
                    f"{delta.model_s.get('decode', 0):.3f}",
                    f"{delta.tokens_per_window:.1f}",
                    f"{t['total'] + t.get('decode', 0):.3f}",
                    f"{elapsed:.3f}",
                ]
            )
    baseline = "the torch engine in this process" if engine == "torch" else "WhisperX"
    print(f"## Direct ({baseline}) vs service, engine {engine}, {seconds:.0f} s of speech, median of {args.repeats}")
    print("Service seconds are those of its last run: upload+decode, VAD, features (request thread),")
    print("encoder and decoder (scheduler), total inside the service, and the client's wall time.")
    print("Same text: segments whose text equals direct WhisperX's at this batch size; the next column")
    print("compares direct WhisperX with itself at the first batch size (float16 rounds per batch shape).\n")
    _table(
        [
            *("batch", "direct RTF", "service RTF", "service/direct", "same text", "direct vs its first batch"),
            *("decode s", "vad s", "features s", "encoder s", "decoder s", "tokens/window", "in service s", "wall s"),
        ],
        rows,
    )
    return ratios


def _run_clients(
    server: RunningServer, files: list[Path], form: dict[str, str]
) -> tuple[float, list[tuple[float, list[str]]]]:
    def one(path: Path) -> tuple[float, list[str]]:
        with server.client() as own:
            elapsed, body = post_audio(own, path, **form)
            return elapsed, _texts(body)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        results = list(pool.map(one, files))
    return time.perf_counter() - started, results


def concurrency(
    args: argparse.Namespace, server: RunningServer, files: list[Path], workload: str
) -> tuple[dict[int, float], float, float]:
    """The table for one workload; returns the aggregate realtime factor per client count, the
    slowest /health answer while loaded, in seconds, and the tokens decoded per window."""
    what, form = WORKLOADS[workload]
    seconds_each = [_seconds(f) for f in files]
    rows, aggregate, slowest_health, tokens = [], {}, 0.0, float("nan")
    with server.client() as client:
        post_audio(client, files[0], **form)  # warm this option set
        for clients in args.clients:
            chosen, audio_s = files[:clients], sum(seconds_each[:clients])
            started = time.perf_counter()
            alone = [post_audio(client, path, **form) for path in chosen]
            sequential_wall = time.perf_counter() - started

            before = scheduler_counters(client)
            with health_probe(server) as health_latencies:
                wall, together = _run_clients(server, chosen, form)
            delta = SchedulerDelta.between(before, scheduler_counters(client))
            latencies = [elapsed for elapsed, _ in together]
            same = sum(texts == _texts(body) for (_, texts), (_, body) in zip(together, alone, strict=True))
            aggregate[clients] = audio_s / wall
            tokens = delta.tokens_per_window
            slowest_health = max([slowest_health, *health_latencies])
            rows.append(
                [
                    str(clients),
                    f"{audio_s / wall:.0f}x",
                    f"{audio_s / sequential_wall:.0f}x",
                    f"{sequential_wall / wall:.2f}",
                    f"{_percentile(latencies, 50):.2f}",
                    f"{_percentile(latencies, 95):.2f}",
                    f"{same}/{clients}",
                    f"{delta.mean_batch:.1f}",
                    f"{delta.tokens_per_window:.1f}",
                    f"{delta.busy_s / wall * 100:.0f}%",
                    f"{max(health_latencies, default=float('nan')) * 1000:.0f}",
                ]
            )
    print(f"## Concurrency: each client sends a different {statistics.mean(seconds_each):.0f} s file ({what})")
    print("Sequential: the same files one after another. Same text: files whose text is identical both")
    print("ways. Busy: the Whisper scheduler's seconds running batches over the wall time, summed over")
    print("its replicas (so up to replicas × 100 %).\n")
    _table(
        [
            *("clients", "aggregate RTF", "sequential RTF", "concurrent/sequential", "p50 s", "p95 s"),
            *("same text", "mean batch", "tokens/window", "busy", "max /health ms"),
        ],
        rows,
    )
    return aggregate, slowest_health, tokens


def stages(server: RunningServer, long_file: Path) -> float:
    """The table; returns the long file's realtime factor with every stage on."""
    diarize = server.health["stages"]["diarization"]["loaded"]
    form = {**WHISPER_ONLY, "word_timestamps": "true", "diarize": "true" if diarize else "false"}
    with server.client() as client:
        post_audio(client, long_file, **form)  # warm this option set
        before = scheduler_counters(client)
        elapsed, body = post_audio(client, long_file, **form)
        delta = SchedulerDelta.between(before, scheduler_counters(client))
    t = body["timings"]
    columns = {
        "decode": t.get("decode", 0.0),
        "vad": t.get("vad", 0.0),
        "features": t.get("features", 0.0),
        "encoder": delta.model_s.get("encode", 0.0),
        "decoder": delta.model_s.get("decode", 0.0),
        "word times": t.get("alignment", 0.0),  # wav2vec2 or Whisper's, as the server has
        "of which attention DTW": delta.model_s.get("align_words", 0.0),
        "diarization (after the words)": t.get("diarization", 0.0),
        "diarization beside the words": t.get("diarization_beside_words", 0.0),
        **{
            f"of which {k.removeprefix('diarization_')}": v
            for k, v in t.items()
            if k.startswith("diarization_") and k != "diarization_beside_words"
        },
        "in service": t["total"] + t.get("decode", 0.0),
        "wall": elapsed,
        "x real time": body["duration"] / elapsed,
        "tokens/window": delta.tokens_per_window,
    }
    source = body.get("word_timestamps_method")
    print(f"## Service stages for the long file, every stage on (seconds; word times: {source}, speakers: {diarize})")
    print("features/encoder/decoder overlap: features of the next batch are computed while one runs.\n")
    _table(list(columns), [[f"{v:.3f}" for v in columns.values()]])
    return float(columns["x real time"])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory(args: argparse.Namespace, server: RunningServer, files: list[Path]) -> dict[str, float]:
    """The table; returns each series' growth in percent."""
    pid = server.process.pid
    series: dict[str, list[float]] = {"process RSS": [], "GPU used": [], "torch allocated": [], "torch reserved": []}
    with server.client() as client:
        for index in range(args.memory_requests):
            post_audio(client, files[index % len(files)], language="en")
            gpu = client.get("/health").json().get("gpu_memory") or {}
            series["process RSS"].append(_rss_mb(pid))
            series["GPU used"].append(gpu.get("used_mb", float("nan")))
            series["torch allocated"].append(gpu.get("torch_allocated_mb", float("nan")))
            series["torch reserved"].append(gpu.get("torch_reserved_mb", float("nan")))
    settle = min(5, args.memory_requests - 1)

    def growth(values: list[float]) -> float:
        base = statistics.mean(values[:settle]) if settle else values[0]
        return (values[-1] - base) / base * 100 if base == base and base > 0 else float("nan")

    print(
        f"## Memory over {args.memory_requests} requests (default options; growth: last vs mean of the first {settle})"
    )
    _table(
        ["", "first MB", "last MB", "max MB", "growth"],
        [
            [name, f"{values[0]:.0f}", f"{values[-1]:.0f}", f"{max(values):.0f}", f"{growth(values):+.1f}%"]
            for name, values in series.items()
        ],
    )
    return {name: growth(values) for name, values in series.items()}


def restart(args: argparse.Namespace, env: dict[str, str], audio: Path, workdir: Path) -> tuple[float, float]:
    """A fresh server on the JIT cache the first one filled: seconds to ready, first/steady request
    (without speakers at ready; the diarizer loads after it: bench/cold_start.py has the rest)."""
    from bench.cold_start import first_over_steady, run_case

    case = run_case("restart", env, audio, args.restart_requests, workdir)
    first, steady, ratio = first_over_steady(case["words"])
    print(f"## Restart on the warm JIT cache (one {_seconds(audio):.0f} s file per request, no speakers)")
    _table(
        ["ready s", "every stage in s", "startup steps s", "first request s", "steady s", "first/steady"],
        [
            [
                f"{case['ready_s']:.1f}",
                f"{case['all_in_s']:.1f}",
                ", ".join(f"{k} {v:.1f}" for k, v in case["startup"].items()),
                f"{first:.2f}",
                f"{steady:.2f}",
                f"{ratio:.2f}",
            ]
        ],
    )
    return case["ready_s"], ratio


def _print_targets(args: argparse.Namespace, results: dict[str, dict[str, Target]]) -> None:
    engines = list(results)
    print(f"## Targets (issues 13 and 25) against this run, max_new_tokens {args.max_new_tokens}")
    first = results[engines[0]]
    rows = [[t.what, t.goal, *(results[e][key].measured for e in engines)] for key, t in first.items()]
    if {"torch", "ctranslate2"} <= set(engines):
        torch_asr, ct2_asr = (results[e]["asr"].measured.rstrip("x") for e in ("torch", "ctranslate2"))
        try:
            ratio = f"{float(torch_asr) / float(ct2_asr):.2f}"
        except ValueError:
            ratio = "not run"
        rows.append(["ASR aggregate, torch / ctranslate2", ">= 2.0", *([ratio] * len(engines))])
    _table(["target", "goal", *engines], rows)


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
    parser.add_argument("--restart-requests", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=0, help="WHISPER_REPLICAS (0: the server's default)")
    parser.add_argument("--vad-method", default="pyannote", help="pyannote matches direct WhisperX")
    parser.add_argument("--diarizer", default="offline", help="DIARIZER for the stage breakdown; 'none' to skip")
    parser.add_argument(
        "--aligner", choices=("none", "random"), default="none", help="random: wav2vec2 base shape, random weights"
    )
    parser.add_argument("--sections", default="direct,concurrency,words,full,stages,memory,start")
    parser.add_argument("--smoke", action="store_true", help="CPU, bundled tiny.en, tiny sizes")
    parser.add_argument("--engines", default="ctranslate2,torch", help="ENGINE of each server, one after another")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.device, args.compute_type = "bundled-tiny.en", "cpu", "int8"
        args.batch_sizes, args.clients, args.long_seconds, args.short_seconds = "2", "2", 30.0, 15.0
        args.memory_requests, args.restart_requests, args.repeats, args.diarizer = 3, 2, 1, "none"
    if not args.model:
        parser.error("--model is required (or --smoke)")
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    args.clients = [int(c) for c in args.clients.split(",")]
    args.engines = args.engines.split(",")
    sections = set(args.sections.split(","))

    workdir = Path(tempfile.mkdtemp(prefix="throughput-"))
    long_file = write_tiled_sample(workdir / "long.wav", args.long_seconds)
    # Offsets that are not multiples of the 30 s clip give every file different windows.
    short_files = [
        write_tiled_sample(workdir / f"short-{k}.wav", args.short_seconds, offset=7.3 * k)
        for k in range(max(args.clients))
    ]
    env = {
        "WHISPER_MODEL": args.model,
        "DEVICE": args.device,
        "COMPUTE_TYPE": args.compute_type,
        "BATCH_SIZE": str(max(args.batch_sizes)),
        "MAX_BATCH_SIZE": str(max(64, *args.batch_sizes)),
        "MAX_PENDING_REQUESTS": str(max(32, *args.clients)),
        "WHISPER_REPLICAS": str(args.replicas),
        "VAD_METHOD": args.vad_method,
        "ENABLE_ALIGNMENT": "false",
        "ENABLE_DIARIZATION": "false" if args.diarizer == "none" else "true",
        "DIARIZER": "offline" if args.diarizer == "none" else args.diarizer,
        "MODEL_CACHE_DIR": str(workdir / "models"),
        "CUDA_CACHE_PATH": os.environ.get("CUDA_CACHE_PATH", str(workdir / "cuda-cache")),
        "HF_HUB_OFFLINE": "1",
    }
    if args.aligner == "random":
        from tests.support.random_aligner import write_random_aligner

        write_random_aligner(workdir / "models")
        env |= {"ENABLE_ALIGNMENT": "true", "PRELOAD_ALIGN_LANGUAGES": '["en"]', "OFFLINE": "true"}
    if args.max_new_tokens:
        env["MAX_NEW_TOKENS"] = str(args.max_new_tokens)
    from app.engine.whisper.sources import resolve_whisper_source

    args.source = resolve_whisper_source(args.model, args.device, workdir / "models")
    args.model_location, args.workdir = args.source.location, workdir
    max(args.clients)
    results: dict[str, dict[str, Target]] = {}
    for engine in args.engines:
        results[engine] = run_engine(args, {**env, "ENGINE": engine}, sections, long_file, short_files, workdir)
    _print_targets(args, results)


def run_engine(
    args: argparse.Namespace,
    env: dict[str, str],
    sections: set[str],
    long_file: Path,
    short_files: list[Path],
    workdir: Path,
) -> dict[str, Target]:
    """Every chosen section against one server with ``env``; the targets as measured."""
    most = max(args.clients)
    targets = {
        "asr": Target(f"ASR aggregate, {most} clients x {args.short_seconds:.0f} s", ">= 1000x"),
        "tokens": Target("text tokens decoded per window (ASR section)", "equal across engines"),
        "direct": Target(f"one {args.long_seconds:.0f} s file, service / direct", ">= 1.0"),
        "full_long": Target(f"one {args.long_seconds:.0f} s file, words and speakers", ">= 400x"),
        "full_many": Target(f"full pipeline aggregate, {most} clients", ">= 150x"),
        "ready": Target("process start -> ready, warm caches", "<= 10 s"),
        "first": Target("first request / steady", "<= 1.2"),
        "memory": Target(f"growth over {args.memory_requests} requests (GPU used, RSS)", "<= +2 %"),
        "health": Target("slowest /health under load", "< 100 ms"),
    }
    with running_server(env, workdir / f"server-{env['ENGINE']}.log", every_stage=True) as server:
        health = server.health
        print(
            f"# engine {health.get('engine')}: {health.get('model')} on {health.get('gpu') or 'cpu'} "
            f"({args.compute_type}), BATCH_SIZE {env['BATCH_SIZE']}, "
            f"replicas {health['queue']['batching']['replicas']}, "
            f"max_new_tokens {args.max_new_tokens}, aligner {args.aligner}, diarizer {args.diarizer}, "
            f"ready after {server.ready_after_s:.1f} s (caches as found)\n",
            flush=True,
        )
        if "direct" in sections:
            ratios = direct_vs_service(args, server, long_file)
            targets["direct"].measured = ", ".join(f"{r:.3f} (batch {b})" for b, r in ratios.items())
        slowest_health = 0.0
        for workload in ("concurrency", "words", "full"):
            if workload in sections and (workload != "full" or args.diarizer != "none"):
                aggregate, health_s, tokens = concurrency(args, server, short_files, workload)
                slowest_health = max(slowest_health, health_s)
                if workload == "concurrency":
                    targets["asr"].measured = f"{aggregate[most]:.0f}x"
                    targets["tokens"].measured = f"{tokens:.1f}"
                if workload == "full":
                    targets["full_many"].measured = f"{aggregate[most]:.0f}x"
        if slowest_health:
            targets["health"].measured = f"{slowest_health * 1000:.0f} ms"
        if "stages" in sections:
            targets["full_long"].measured = f"{stages(server, long_file):.0f}x"
        if "memory" in sections:
            growth = memory(args, server, short_files)
            targets["memory"].measured = f"{growth['GPU used']:+.1f} %, {growth['process RSS']:+.1f} %"
    if "start" in sections:
        ready, first = restart(args, env, short_files[0], workdir)
        targets["ready"].measured, targets["first"].measured = f"{ready:.1f} s", f"{first:.2f}"
    return targets


if __name__ == "__main__":
    main()
