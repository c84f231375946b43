"""Cold-start benchmark: process start → /health 200, and the first request against the steady state.

Each case starts the real server (`python -m app`) in a fresh process:
  empty cache     CUDA_CACHE_PATH is an empty directory: every PTX kernel is JIT-compiled
  warm cache      the same directory again, now filled by the first case
  warm, no warmup WARMUP=false on the warm cache: what the first request pays without warmup

and prints a table with the startup breakdown the server reports (/health `startup_s`).

    python -m bench.cold_start --model DIR [--max-new-tokens 128] [--batch-size 16] [--audio-seconds 60]

On the CPU this runs too (no JIT there: the cases differ only by warmup), e.g. on the bundled model:
    python -m bench.cold_start --model bundled-base --requests 3 --audio-seconds 30
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from tests.support.server import post_audio, running_server, write_tiled_sample

STEPS = ("before_load", "cuda_init", "whisper", "whisper_warmup", "vad", "aligners", "diarizer", "load_total", "warmup")


def run_case(name: str, env: dict[str, str], audio: Path, requests: int, language: str, workdir: Path) -> dict:
    with running_server(env, workdir / f"{name.replace(' ', '_')}.log") as server:
        with server.client() as client:
            latencies = [post_audio(client, audio, language=language)[0] for _ in range(requests)]
        health = server.health
    steady = statistics.median(latencies[1:]) if len(latencies) > 1 else float("nan")
    jit = health.get("jit_cache") or {}
    return {
        "case": name,
        "ready_s": server.ready_after_s,
        "startup": health.get("startup_s", {}),
        "first_s": latencies[0],
        "steady_s": steady,
        "jit_files": jit.get("files", 0),
        "jit_mb": jit.get("size_bytes", 0) / 1e6,
        "gpu": health.get("gpu") or "cpu",
        "model": health.get("model"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="WHISPER_MODEL for the server")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compute-type", default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--audio-seconds", type=float, default=60.0)
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--language", default="en")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--extra-env", action="append", default=[], help="KEY=VALUE for the server")
    args = parser.parse_args()

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

    cases = [
        ("empty cache", {}),
        ("warm cache", {}),
        ("warm, no warmup", {"WARMUP": "false"}),
    ]
    rows = [run_case(name, base | extra, audio, args.requests, args.language, workdir) for name, extra in cases]

    print(f"\nmodel {rows[0]['model']} on {rows[0]['gpu']}, batch {args.batch_size}, "
          f"{args.audio_seconds:g} s request, {args.requests} requests per case")  # fmt: skip
    header = ["case", "ready s", *STEPS, "1st req s", "steady s", "1st/steady", "jit files", "jit MB"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        steps = [f"{row['startup'].get(step, 0.0):.2f}" for step in STEPS]
        ratio = row["first_s"] / row["steady_s"] if row["steady_s"] == row["steady_s"] else float("nan")
        cells = [row["case"], f"{row['ready_s']:.1f}", *steps, f"{row['first_s']:.2f}", f"{row['steady_s']:.2f}",
                 f"{ratio:.2f}", str(row["jit_files"]), f"{row['jit_mb']:.1f}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
