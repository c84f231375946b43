"""The Whisper engines' model calls alone, side by side: one batch of windows, encoded and decoded.

    python -m bench.decode_probe --model DIR [--batch 32] [--max-new-tokens 128] [--engines ctranslate2,torch]

For each engine: seconds per batch (encoder and decoder apart), the text tokens it actually
decoded per window (CTranslate2 decodes at most half of its ``max_length``: the engine sets it
so both decode ``--max-new-tokens``), milliseconds per decoding step, the realtime factor of the
batch (windows × 30 s over its seconds), and the GPU memory it took. The torch engine is run
with its CUDA graphs and eagerly (every kernel launched from Python), to show what the graphs buy.
Features are the sample call's log-Mel windows; with random weights no window ends early.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.engine.decoding import Sampling
from app.engine.whisper.engine import WhisperEngine
from app.engine.whisper.sources import resolve_whisper_source
from app.engine.whisper.stage import Whisper
from app.serving.warmup import sample_speech

WINDOW_S = 30.0


def _load(engine: str, args: argparse.Namespace) -> WhisperEngine:
    source = resolve_whisper_source(args.model, args.device, Path("/tmp/decode-probe-models"))
    common: dict[str, Any] = {
        "device": args.device,
        "compute_type": args.compute_type,
        "cpu_threads": 0,
        "download_root": "/tmp/decode-probe-models",
        "hf_token": None,
        "max_new_tokens": args.max_new_tokens,
    }
    if engine == "torch":
        from app.engine.whisper.torch_engine import TorchEngine

        return TorchEngine.load(source, **common)
    from app.engine.whisper.ctranslate2 import CTranslate2Engine

    return CTranslate2Engine.load(source, **common)


def _features(whisper: Whisper, windows: int) -> np.ndarray:
    clip = sample_speech()
    # Different offsets into the repeated clip, so windows differ.
    tiled = np.tile(clip, 2 + windows)
    step = int(7.3 * 16000)
    return np.stack([whisper._features(tiled[k * step : k * step + int(WINDOW_S * 16000)]) for k in range(windows)])


def _gpu_used_mb() -> float:
    import torch

    if not torch.cuda.is_available():
        return float("nan")
    free, total = torch.cuda.mem_get_info()
    return (total - free) / 2**20


def probe(engine: WhisperEngine, features: np.ndarray, repeats: int, label: str) -> dict[str, Any]:
    whisper = Whisper(engine)
    tokenizer = engine.tokenizer("en", "transcribe")
    prompt = engine.prompt(tokenizer, None)
    beam_search = Sampling(0.0)  # temperature 0: beam search, as requests decode
    started = time.perf_counter()
    first = engine.decode(features, prompt, beam_search)  # includes graph capture / kernel selection
    first_s = time.perf_counter() - started
    timer = engine.model_seconds
    times, encode, decode = [], [], []
    for _ in range(repeats):
        before = dict(timer.timings)
        started = time.perf_counter()
        decoded = engine.decode(features, prompt, beam_search)
        times.append(time.perf_counter() - started)
        encode.append(timer.timings["encode"] - before["encode"])
        decode.append(timer.timings["decode"] - before["decode"])
    tokens = statistics.mean(len(d.tokens) for d in decoded)
    seconds = statistics.median(times)
    del whisper, first
    return {
        "engine": label,
        "batch": features.shape[0],
        "tokens/window": tokens,
        "first s": first_s,
        "s/batch": seconds,
        "encoder s": statistics.median(encode),
        "decoder s": statistics.median(decode),
        "ms/step": statistics.median(decode) / max(tokens, 1) * 1000,
        "RTF": features.shape[0] * WINDOW_S / seconds,
        "GPU used MB": _gpu_used_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--compute-type", default="float16")
    parser.add_argument("--batch", default="32", help="comma-separated batch sizes")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--engines", default="ctranslate2,torch")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for name in args.engines.split(","):
        engine = _load(name, args)
        batches = [int(b) for b in args.batch.split(",")]
        features = {b: _features(Whisper(engine), b) for b in batches}
        for batch in batches:
            rows.append(probe(engine, features[batch], args.repeats, name))
            if name == "torch" and getattr(engine, "cuda_graphs", False):
                engine.cuda_graphs = False  # type: ignore[attr-defined]
                engine.drop_graphs()  # type: ignore[attr-defined]
                rows.append(probe(engine, features[batch], args.repeats, "torch eager"))
                engine.cuda_graphs = True  # type: ignore[attr-defined]
                engine.drop_graphs()  # type: ignore[attr-defined]
        if name == "torch":
            import torch

            if torch.cuda.is_available():
                print(f"torch engine peak allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")
        del engine
    print(f"\n## Decode probe: {args.model}, {args.compute_type}, beam 5, --max-new-tokens {args.max_new_tokens}\n")
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [
            f"{v:.3f}" if isinstance(v, float) and v < 10 else f"{v:.0f}" if isinstance(v, float) else str(v)
            for v in row.values()
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
