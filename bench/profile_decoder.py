"""Where Whisper's GPU time goes: a CUDA kernel trace of CTranslate2's encoder and beam search.

    python -m bench.profile_decoder --model DIR [--batch-sizes 8,32] [--max-new-tokens 128]

torch's profiler (CUPTI) records every kernel the process launches, CTranslate2's included.
For each batch size it prints the wall time of one ``generate`` (beam 5, as WhisperX decodes),
the share of it the GPU was busy (the union of kernel intervals), the number of kernels and
their mean length, and the kernels that take the most time. Few, long kernels with the GPU
busy most of the time mean the device is the limit; many short ones with gaps mean the host
(kernel launches, beam bookkeeping) is.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np


def _prompt(model_dir: Path) -> list[int]:
    """<|startoftranscript|> (<|en|> <|transcribe|> for multilingual models) <|notimestamps|>."""
    vocabulary = model_dir / "vocabulary.json"
    if vocabulary.exists():
        tokens = json.loads(vocabulary.read_text())
    else:
        tokens = (model_dir / "vocabulary.txt").read_text().split("\n")
    ids = {token: index for index, token in enumerate(tokens)}
    wanted = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
    return [ids[token] for token in wanted if token in ids]


def _busy_union(intervals: list[tuple[float, float]]) -> float:
    busy, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if start > end:
            busy += stop - start
            end = stop
        elif stop > end:
            busy += stop - end
            end = stop
    return busy


def profile_batch(model: Any, prompt: list[int], batch: int, mels: int, max_new_tokens: int) -> dict[str, Any]:
    import ctranslate2
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    rng = np.random.default_rng(0)
    features = ctranslate2.StorageView.from_array(rng.standard_normal((batch, mels, 3000), dtype=np.float32))

    def run() -> tuple[float, float]:
        started = time.perf_counter()
        encoded = model.encode(features, to_cpu=False)
        torch.cuda.synchronize()
        encoded_at = time.perf_counter()
        model.generate(encoded, [prompt] * batch, beam_size=5, max_length=max_new_tokens, suppress_blank=False)
        torch.cuda.synchronize()
        return encoded_at - started, time.perf_counter() - encoded_at

    run()  # warm: JIT, allocator
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as trace:
        encode_s, decode_s = run()
    kernels = [e for e in trace.events() if e.device_type == DeviceType.CUDA]
    intervals = [(e.time_range.start / 1e6, e.time_range.end / 1e6) for e in kernels]
    by_name: dict[str, list[float]] = {}
    for event, (start, stop) in zip(kernels, intervals, strict=True):
        by_name.setdefault(event.name, []).append(stop - start)
    window = (min(s for s, _ in intervals), max(e for _, e in intervals)) if intervals else (0.0, 0.0)
    return {
        "batch": batch,
        "encode_s": encode_s,
        "decode_s": decode_s,
        "kernels": len(kernels),
        "kernel_s": sum(stop - start for start, stop in intervals),
        "busy_s": _busy_union(intervals),
        "traced_s": window[1] - window[0],
        "top": sorted(((sum(v), len(v), k) for k, v in by_name.items()), reverse=True)[:8],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a CTranslate2 Whisper model directory")
    parser.add_argument("--batch-sizes", default="8,32")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--compute-type", default="float16")
    parser.add_argument("--flash-attention", action="store_true", help="CTranslate2's FlashAttention 2")
    args = parser.parse_args()

    import ctranslate2
    import torch

    torch.cuda.init()
    model = ctranslate2.models.Whisper(
        str(args.model), device="cuda", compute_type=args.compute_type, flash_attention=args.flash_attention
    )
    mels = json.loads((args.model / "preprocessor_config.json").read_text()).get("feature_size", 80)
    prompt = _prompt(args.model)
    print(f"{torch.cuda.get_device_name()}, {args.model.name}, {args.compute_type}, beam 5, "
          f"{args.max_new_tokens} tokens, flash attention {args.flash_attention}, prompt {prompt}")  # fmt: skip
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        r = profile_batch(model, prompt, batch, mels, args.max_new_tokens)
        if not r["kernels"]:
            print(f"batch {batch}: the profiler saw no CUDA kernel (CUPTI unavailable?)")
            continue
        wall = r["encode_s"] + r["decode_s"]
        print(f"\nbatch {batch}: encode {r['encode_s'] * 1000:.0f} ms, decode {r['decode_s'] * 1000:.0f} ms "
              f"({r['decode_s'] / batch * 1000:.1f} ms per window)")  # fmt: skip
        print(f"  kernels {r['kernels']}, mean {r['kernel_s'] / r['kernels'] * 1e6:.1f} µs; "
              f"GPU busy {r['busy_s']:.3f} s of {wall:.3f} s wall ({r['busy_s'] / wall:.0%})")  # fmt: skip
        for total, count, name in r["top"]:
            print(f"  {total * 1000:8.1f} ms {count:6d}×  {name[:110]}")


if __name__ == "__main__":
    main()
