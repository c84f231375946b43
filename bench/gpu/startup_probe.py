"""Where Whisper's part of a GPU start-up goes, outside the server: each CUDA library's first use,
and the torch engine's load, CUDA-graph captures and first batches, each timed on its own.

bench.cold_start gives the server's timeline; this splits its two longest steps (Python before the
first model, Whisper's warmup) into what they are made of. Run on a GPU machine, repo root:

    python bench/gpu/startup_probe.py first-use
    python bench/gpu/startup_probe.py engine MODEL_DIR [--max-new-tokens 128] [--batch-size 16]

Each mode wants a fresh process: a first use is first only once.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.engine.whisper import fallback

STARTED = time.perf_counter()


class Laps:
    def __init__(self) -> None:
        self.last = STARTED

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        print(f"{name:<44} {now - self.last:7.3f} s   (at {now - STARTED:6.2f} s)", flush=True)
        self.last = now


def first_use(lap: Laps, torch: Any) -> None:
    """One small call into each library Whisper's first batch uses."""
    f, half, sync = torch.nn.functional, torch.float16, torch.cuda.synchronize
    x, w = torch.randn(2048, 1280, device="cuda", dtype=half), torch.randn(1280, 1280, device="cuda", dtype=half)
    f.linear(x, w)
    sync()
    lap("first linear (cuBLAS)")
    mel, kernel = (
        torch.randn(16, 128, 3000, device="cuda", dtype=half),
        torch.randn(1280, 128, 3, device="cuda", dtype=half),
    )
    f.conv1d(mel, kernel, padding=1)
    sync()
    lap("first conv1d (cuDNN)")
    frames = torch.randn(16, 20, 1500, 64, device="cuda", dtype=half)
    f.scaled_dot_product_attention(frames, frames, frames)
    sync()
    lap("first attention, encoder shape")
    query, keys = (
        torch.randn(80, 20, 1, 64, device="cuda", dtype=half),
        torch.randn(80, 20, 160, 64, device="cuda", dtype=half),
    )
    f.scaled_dot_product_attention(query, keys, keys)
    sync()
    lap("first attention, decoder step shape")
    f.gelu(x), f.layer_norm(x, (1280,)), x.float().log_softmax(-1).topk(10)
    sync()
    lap("gelu, layer norm, log-softmax, top-k")
    signal = torch.randn(16000 * 30, device="cuda")
    torch.stft(signal, 400, 160, window=torch.hann_window(400, device="cuda"), return_complex=True).abs()
    sync()
    lap("first stft (cuFFT)")


def engine(lap: Laps, torch: Any, model: str, max_new_tokens: int, batch_size: int) -> None:
    """The torch engine as the server warms it: load, prepare (the largest bucket's graphs now,
    the rest on a thread), full batches, then a small batch before and after the captures end."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from app.engine.decoding import Decoding
    from app.engine.vad import SpeechChunk
    from app.engine.whisper import beam_search, torch_engine
    from app.engine.whisper.sources import resolve_whisper_source
    from app.engine.whisper.stage import Whisper
    from app.serving.warmup import sample_speech

    lap("import the app's engine modules")

    def timed(owner: Any, name: str, label: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            torch.cuda.synchronize()
            started = time.perf_counter()
            out = original(*args, **kwargs)
            torch.cuda.synchronize()
            print(f"    {label:<40} {time.perf_counter() - started:7.3f} s", flush=True)
            return out

        setattr(owner, name, wrapper)

    timed(torch_engine, "read_weights", "read_weights")
    timed(beam_search.BeamSearch, "capture_view", "one graph captured")
    timed(torch_engine.TorchEngine, "_cross", "features to the GPU, encoder")
    timed(beam_search.BeamSearch, "run", "beam search")
    source = resolve_whisper_source(model, "cuda", Path("/tmp/startup-probe"))
    loaded = torch_engine.TorchEngine.load(
        source,
        device="cuda",
        compute_type="float16",
        cpu_threads=4,
        download_root="/tmp/startup-probe",
        hf_token=None,
        max_new_tokens=max_new_tokens,
    )
    lap("TorchEngine.load")
    whisper = Whisper(loaded)
    clip = sample_speech()
    window = [SpeechChunk(0.0, clip.shape[0] / 16000)]
    english = Decoding("en", "transcribe", None, fallback.ONCE, batch_size)
    whisper.prepare(batch_size, english)
    lap(f"prepare({batch_size}): the largest bucket's graphs")
    for i in range(3):
        segments = whisper.transcribe(clip, window * batch_size, english)
        lap(f"{batch_size} windows, batch {i + 1}")
    print("first window's text:", segments[0].text[:200] if segments else None, flush=True)
    whisper.transcribe(clip, window * 2, english)
    lap("2 windows (padded if their graphs are not in yet)")
    time.sleep(3)
    lap("3 s pause")
    whisper.transcribe(clip, window * 2, english)
    lap("2 windows again")
    print("graphs per bucket:", {s.windows: len(v._graphs) for s, v in loaded._searches.items()})
    allocated, reserved = torch.cuda.memory_allocated() / 2**20, torch.cuda.memory_reserved() / 2**20
    print(f"GPU memory: {allocated:.0f} MiB allocated, {reserved:.0f} reserved")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["first-use", "engine"])
    parser.add_argument("model", nargs="?", help="engine: WHISPER_MODEL (a local folder or bundled name)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    lap = Laps()
    import torch

    lap("import torch")
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    lap("CUDA's start (first tensor)")
    if args.mode == "first-use":
        first_use(lap, torch)
    else:
        if not args.model:
            parser.error("engine needs MODEL")
        engine(lap, torch, args.model, args.max_new_tokens, args.batch_size)


if __name__ == "__main__":
    main()
