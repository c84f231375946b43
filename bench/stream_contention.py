"""Does torch's GPU work wait for Whisper's decoding? The default stream against a side stream.

CTranslate2 launches its kernels on CUDA's legacy default stream. While one or two threads
decode batches of 32 windows (beam 5), this times a small torch matmul (and 200 host-to-device
copies, as a model load makes) on torch's default stream and on a side stream, then the
decoding alone with one and two threads. The service keeps torch off the default stream
(``app/runtime/gpu_streams.py``) because of what this prints.

    python -m bench.stream_contention --model DIR [--max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.profile_decoder import _prompt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="a CTranslate2 Whisper directory")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()

    import ctranslate2
    import torch

    model = ctranslate2.models.Whisper(str(args.model), device="cuda", compute_type="float16", inter_threads=2)
    prompt = _prompt(args.model)
    features = ctranslate2.StorageView.from_array(
        np.random.default_rng(0).standard_normal((args.batch, model.n_mels, 3000), dtype=np.float32)
    )

    def decode(batches: int) -> None:
        for _ in range(batches):
            encoded = model.encode(features, to_cpu=False)
            model.generate(encoded, [prompt] * args.batch, beam_size=5, max_length=args.max_new_tokens)

    x = torch.ones(1024, 1024, device="cuda")

    def matmul(stream: Any, seconds: float = 3.0) -> str:
        times, end = [], time.perf_counter() + seconds
        with torch.cuda.stream(stream):
            while time.perf_counter() < end:
                started = time.perf_counter()
                _ = x @ x
                stream.synchronize()
                times.append((time.perf_counter() - started) * 1000)
        return f"median {statistics.median(times):.2f} ms, p90 {sorted(times)[int(len(times) * 0.9)]:.2f} ms"

    def copies(stream: Any, count: int = 200) -> str:
        host = [torch.randn(256, 256) for _ in range(count)]
        started = time.perf_counter()
        with torch.cuda.stream(stream):
            for tensor in host:
                tensor.to("cuda")
            stream.synchronize()
        return f"{(time.perf_counter() - started) * 1000:.0f} ms"

    decode(1)  # JIT and allocations
    default, side = torch.cuda.default_stream(), torch.cuda.Stream()
    header = ["decoding threads", "matmul, default stream", "matmul, side stream", "200 copies, default", "side"]
    print("| " + " | ".join(header) + " |")
    print("|---|---|---|---|---|")
    for threads in (0, 1, 2):
        workers = [threading.Thread(target=decode, args=(3,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        time.sleep(0.5 if threads else 0.0)
        print(f"| {threads} | {matmul(default)} | {matmul(side)} | {copies(default)} | {copies(side)} |", flush=True)
        for worker in workers:
            worker.join()
    for threads in (1, 2):
        started = time.perf_counter()
        workers = [threading.Thread(target=decode, args=(2,)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        print(f"{threads} thread(s), 2 batches of {args.batch} each: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
