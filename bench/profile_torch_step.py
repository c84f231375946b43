"""What the GPU does in one decoding step of the torch engine: its kernels, by time.

    python -m bench.profile_torch_step --model DIR [--batch 32] [--max-new-tokens 128] [--steps 16]

Runs one batch to fill the cache, then profiles ``--steps`` eager steps (the same kernels a CUDA
graph replays, without the launch gaps) and prints the kernels that took the most GPU time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from app.engine.decoding import Sampling
from app.engine.whisper.sources import resolve_whisper_source
from app.engine.whisper.stage import Whisper
from app.engine.whisper.torch_engine import TorchEngine
from bench.decode_probe import _features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=16)
    args = parser.parse_args()
    source = resolve_whisper_source(args.model, "cuda", Path("/tmp/profile-models"))
    engine = TorchEngine.load(
        source, device="cuda", compute_type="float16", cpu_threads=0, download_root="/tmp/profile-models",
        hf_token=None, max_new_tokens=args.max_new_tokens, cuda_graphs=False,
    )  # fmt: skip
    features = _features(Whisper(engine), args.batch)
    prompt = engine.prompt(engine.tokenizer("en", "transcribe"), None)
    engine.decode(features, prompt, Sampling(0.0))
    [search] = engine._searches.values()
    step = args.max_new_tokens // 2  # mid-window: the cache half full
    slots = search.slot_view(len(prompt) - 1 + step)
    with torch.inference_mode():
        search.step_index.fill_(step)
        search.advance(slots)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(args.steps):
                search.advance(slots)
            torch.cuda.synchronize()
    print(f"## One decoding step, batch {args.batch} x beam 5, reading {slots} slots: GPU time per step")
    total = 0.0
    rows = []
    for event in prof.key_averages():
        if event.device_time_total <= 0:
            continue
        per_step = event.device_time_total / args.steps / 1000
        total += per_step
        rows.append((per_step, event.count // args.steps, event.key[:90]))
    for per_step, count, key in sorted(rows, reverse=True)[:20]:
        print(f"{per_step:8.3f} ms  x{count:<5d} {key}")
    print(f"{total:8.3f} ms  total GPU time per step")


if __name__ == "__main__":
    main()
