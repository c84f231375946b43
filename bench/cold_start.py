"""Cold-start benchmark: process start → ready, each start-up step on one time axis, and the
first request against the steady state.

Each case starts the real server (`python -m app`) in a fresh process:
  empty cache          CUDA_CACHE_PATH is an empty directory: every PTX kernel is JIT-compiled
  warm cache           the same directory again, now filled by the first case
  warm, no diarization ENABLE_DIARIZATION=false on the warm cache
  (--no-warmup-case)   WARMUP=false on the warm cache: what the first request pays without warmup

"ready" is `/health` answering 200: transcription is served. The diarizer loads after that
(`/health?require=all` answers 200 once it is in: "all in"). At ready the case sends requests
without speakers (`diarize=false`: what is served at once); once every stage is in, requests
with the defaults (speakers included), all in English with one pass per window (``ONE_PASS``).
Each set's first request is compared with its median.
The table ends with the warm case's start-up timeline (`/health` `startup_timeline`) and, on
the CPU, ready as a multiple of a bare `import torch` in this same Python.

    python -m bench.cold_start --model DIR [--max-new-tokens 128] [--batch-size 16] [--audio-seconds 60]

On the CPU this runs too (no JIT there: the cases differ by diarization and warmup), e.g.
    python -m bench.cold_start --model bundled-base --requests 3 --audio-seconds 30
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.server import post_audio, running_server, wait_for_every_stage, write_tiled_sample

# One beam-search pass per window (`temperature[]=0`): random weights fail every quality check,
# so the default schedule would decode each window six times (five of them sampling, without
# CUDA graphs) and time the random model's retries, not a start-up. Real speech mostly passes.
ONE_PASS = {"language": "en", "temperature[]": "0"}


def run_case(name: str, env: dict[str, str], audio: Path, requests: int, workdir: Path) -> dict:
    with running_server(env, workdir / f"{name.replace(' ', '_').replace(',', '')}.log") as server:
        with server.client() as client:
            words = [post_audio(client, audio, **ONE_PASS, diarize="false")[0] for _ in range(requests)]
            wait_for_every_stage(server)
            full = [post_audio(client, audio, **ONE_PASS)[0] for _ in range(requests)]
        health = server.health
    jit = health.get("jit_cache") or {}
    return {
        "case": name,
        "ready_s": server.ready_after_s,
        # From the server's own clock: the poll above starts only after the requests at ready.
        "all_in_s": health.get("startup_s", {}).get("diarization_ready", server.ready_after_s),
        "startup": health.get("startup_s", {}),
        "timeline": health.get("startup_timeline", []),
        "words": words,
        "full": full,
        "jit_files": jit.get("files", 0),
        "jit_mb": jit.get("size_bytes", 0) / 1e6,
        "gpu": health.get("gpu") or "cpu",
        "model": health.get("model"),
    }


def first_over_steady(latencies: list[float]) -> tuple[float, float, float]:
    steady = statistics.median(latencies[1:]) if len(latencies) > 1 else float("nan")
    return latencies[0], steady, latencies[0] / steady


def bare_torch_import_s(runs: int = 3) -> float:
    """A fresh Python importing torch and nothing else, the median of ``runs``."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="WHISPER_MODEL for the server")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compute-type", default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--audio-seconds", type=float, default=60.0)
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--no-warmup-case", action="store_true", help="add a warm-cache case with WARMUP=false")
    parser.add_argument(
        "--smoke", action="store_true", help="CI's CPU figure: the warm case only, 2 requests of 10 s each"
    )
    parser.add_argument("--extra-env", action="append", default=[], help="KEY=VALUE for the server")
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.audio_seconds = 2, 10.0

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cold-start-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cuda_cache = workdir / "cuda-cache"
    cuda_cache.mkdir(exist_ok=True)
    audio = write_tiled_sample(workdir / "speech.wav", args.audio_seconds)
    base = {
        "WHISPER_MODEL": args.model,
        "DEVICE": args.device,
        "COMPUTE_TYPE": args.compute_type,
        "BATCH_SIZE": str(args.batch_size),
        "MODEL_CACHE_DIR": str(workdir / "models"),
        "CUDA_CACHE_DISABLE": "0",
        "CUDA_CACHE_PATH": str(cuda_cache),
        "CUDA_CACHE_MAXSIZE": "2147483648",
        "CUDA_FORCE_PTX_JIT": "0",
        "HF_HUB_OFFLINE": "1",
    }
    if args.max_new_tokens:
        base["MAX_NEW_TOKENS"] = str(args.max_new_tokens)
    base.update(dict(item.split("=", 1) for item in args.extra_env))

    cases = [("empty cache", {}), ("warm cache", {}), ("warm, no diarization", {"ENABLE_DIARIZATION": "false"})]
    if args.smoke:  # the CPU has no JIT cache: one start is the warm case
        cases = [("warm cache", {})]
    if args.no_warmup_case:
        cases.append(("warm, no warmup", {"WARMUP": "false"}))
    rows = [run_case(name, base | extra, audio, args.requests, workdir) for name, extra in cases]

    print(f"\nmodel {rows[0]['model']} on {rows[0]['gpu']}, batch {args.batch_size}, "
          f"{args.audio_seconds:g} s request, {args.requests} requests per set")  # fmt: skip
    header = ["case", "ready s", "all in s", "1st/steady at ready (no speakers)", "1st/steady all in (defaults)",
              "jit files", "jit MB"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        sets = []
        for latencies in (row["words"], row["full"]):
            first, steady, ratio = first_over_steady(latencies)
            sets.append(f"{first:.2f} / {steady:.2f} s = {ratio:.2f}")
        cells = [row["case"], f"{row['ready_s']:.1f}", f"{row['all_in_s']:.1f}", *sets, str(row["jit_files"]),
                 f"{row['jit_mb']:.1f}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")

    warm = next(row for row in rows if row["case"] == "warm cache")
    print(f"\nstart-up timeline, {warm['case']} (seconds since the process started; ready "
          f"{warm['startup'].get('ready', float('nan')):.2f}, every stage in "
          f"{warm['startup'].get('diarization_ready', float('nan')):.2f})")  # fmt: skip
    print("| step | thread | start | end | seconds |")
    print("|---|---|---|---|---|")
    for span in warm["timeline"]:
        seconds = span["end"] - span["start"]
        print(f"| {span['step']} | {span['thread']} | {span['start']:.2f} | {span['end']:.2f} | {seconds:.2f} |")
    if warm["gpu"] == "cpu":
        torch_s = bare_torch_import_s()
        print(f"\nbare `import torch` here: {torch_s:.2f} s; ready (warm) = {warm['ready_s'] / torch_s:.1f}× it, "
              f"every stage in = {warm['all_in_s'] / torch_s:.1f}× it")  # fmt: skip


if __name__ == "__main__":
    main()
