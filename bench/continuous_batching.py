"""Continuous batching in the torch engine: a batch that never waits for its longest window.

Clients transcribe files through one Whisper stage and its scheduler, as the service's requests
do. Each file is windows cut from the real two-speaker call at lengths from 2 to 30 s, so real
speech ends them after different numbers of tokens. The same files run twice on the same
engine, in one process:

- **whole batches**: a batch runs until its last window ends (the engine's ``refills_windows`` off);
- **refilled**: a window that ends gives its place to one waiting in the queue, at the next check.

It prints audio seconds per second for each, the windows that joined running batches, and how
many windows' texts differ between the two (none on the CPU in float32; float16 on a GPU may
round a few differently, as any change of batch-mates does).

With random weights (the large-v3-shaped model on the lent GPU) no window ever ends by itself:
``--lengths-from MODEL`` first transcribes every window with a real model (the bundled tiny.en)
and forces end-of-text at its token count (bench/decode_lengths.py), so the random model decodes
what a real transcript would.

    python -m bench.continuous_batching                      # bundled base on the CPU
    python -m bench.continuous_batching --smoke              # tiny.en, 2 clients, small files
    python -m bench.continuous_batching --model /tmp/models/large-v3-hf --device cuda \\
        --lengths-from /tmp/models/tiny-int8 --batch-size 32 --clients 8
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np

from app.engine.audio import SAMPLE_RATE
from app.engine.decoding import Decoding
from app.engine.vad import SpeechChunk
from app.engine.whisper import fallback
from app.engine.whisper.stage import Whisper
from app.engine.whisper.torch_engine import TorchEngine
from app.serving.warmup import sample_speech
from bench.decode_lengths import forced_lengths, real_lengths
from bench.decode_probe import _load


def load(model: str, device: str, compute_type: str, max_new_tokens: int | None) -> Whisper:
    """The torch engine behind a Whisper stage and its scheduler (decode_probe's loader)."""
    probe_args = SimpleNamespace(model=model, device=device, compute_type=compute_type, max_new_tokens=max_new_tokens)
    return Whisper(_load("torch", probe_args))  # type: ignore[arg-type]


def files(count: int, windows: int, seed: int) -> list[list[np.ndarray]]:
    """``count`` files of ``windows`` windows each: spans of the sample call, 2 to 30 s long."""
    audio = sample_speech()
    total_s = len(audio) / SAMPLE_RATE
    rng = np.random.default_rng(seed)
    made = []
    for _ in range(count):
        spans = []
        for _ in range(windows):
            length = float(rng.uniform(2.0, min(30.0, total_s)))
            start = float(rng.uniform(0.0, total_s - length))
            spans.append(audio[int(start * SAMPLE_RATE) : int((start + length) * SAMPLE_RATE)])
        made.append(spans)
    return made


def transcribe_file(whisper: Whisper, windows: list[np.ndarray], decoding: Decoding) -> list[str]:
    """One request: the windows back to back, each its own speech chunk."""
    chunks, at = [], 0
    for window in windows:  # half a sample in, so the stage's slices are these windows exactly
        chunks.append(SpeechChunk((at + 0.5) / SAMPLE_RATE, (at + len(window) + 0.5) / SAMPLE_RATE))
        at += len(window)
    segments = whisper.transcribe(np.concatenate(windows), chunks, decoding)
    return [segment.text for segment in segments]


def run_clients(whisper: Whisper, per_client: list[list[list[np.ndarray]]], decoding: Decoding) -> tuple[float, list]:
    """Every client sends its files one after another; the wall time and each file's texts."""
    texts: list = [None] * len(per_client)

    def client(index: int) -> None:
        texts[index] = [transcribe_file(whisper, windows, decoding) for windows in per_client[index]]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(per_client))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="bundled-base")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compute-type", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--files", type=int, default=2, help="files per client")
    parser.add_argument("--windows", type=int, default=8, help="windows per file")
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--lengths-from", default=None, help="a real model whose token counts the windows end at")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="CPU, bundled tiny.en, small sizes")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.device, args.batch_size, args.clients, args.files, args.windows = (
            "bundled-tiny.en", "cpu", 4, 2, 1, 4)  # fmt: skip
        args.repeats, args.beams = 1, 1

    from dataclasses import replace

    whisper = load(args.model, args.device, args.compute_type, args.max_new_tokens)
    engine = whisper.engine
    assert isinstance(engine, TorchEngine)
    engine.options = replace(engine.options, beam_size=args.beams)
    decoding = Decoding("en", "transcribe", None, fallback.ONCE, args.batch_size)
    every_file = files(args.clients * args.files, args.windows, seed=7)
    per_client = [every_file[i :: args.clients] for i in range(args.clients)]
    audio_s = sum(len(w) for f in every_file for w in f) / SAMPLE_RATE

    lengths = None
    if args.lengths_from:
        real = load(args.lengths_from, args.device, args.compute_type, None)
        lengths = real_lengths(real, whisper, [w for f in every_file for w in f], decoding)
        real.engine.release()
        tokens = sorted(lengths.values())
        print(f"Forced lengths from {args.lengths_from}: {len(tokens)} windows, tokens "
              f"min {tokens[0]} / median {tokens[len(tokens) // 2]} / max {tokens[-1]}")  # fmt: skip

    rows: dict[str, dict] = {}
    windows = args.clients * args.files * args.windows
    with forced_lengths(engine, lengths) if lengths else nullcontext():
        whisper.prepare(args.batch_size, decoding)
        for refills in (False, True, False, True)[: 2 * args.repeats]:
            engine.refills_windows = refills  # type: ignore[misc]
            transcribe_file(whisper, every_file[0][:2], decoding)  # warm this arm
            before, tokens_before = whisper.scheduler.stats(), whisper.decoded.tokens
            wall, texts = run_clients(whisper, per_client, decoding)
            after, tokens = whisper.scheduler.stats(), whisper.decoded.tokens - tokens_before
            arm = "refilled" if refills else "whole batches"
            best = rows.get(arm)
            if best is None or wall < best["wall_s"]:
                rows[arm] = {
                    "wall_s": round(wall, 3),
                    "audio_s_per_s": round(audio_s / wall, 2),
                    "batches": after.batches - before.batches,
                    "joined": after.joined - before.joined,
                    "tokens_per_window": round(tokens / windows, 1),
                    "texts": texts,
                }
    whole, refilled = rows["whole batches"], rows["refilled"]
    differ = sum(
        a != b
        for client_a, client_b in zip(whole["texts"], refilled["texts"], strict=True)
        for file_a, file_b in zip(client_a, client_b, strict=True)
        for a, b in zip(file_a, file_b, strict=False)
    )
    print(f"\n## Continuous batching: {args.model} on {args.device}, batch {args.batch_size}, beam {args.beams}, "
          f"{args.clients} clients x {args.files} files x {args.windows} windows ({audio_s:.0f} s of audio)"
          f"{', forced lengths' if lengths else ''}\n")  # fmt: skip
    print("| arm | wall s (best of runs) | audio s / s | batches | windows joined | tokens / window |")
    print("|---|---|---|---|---|---|")
    for arm, row in rows.items():
        print(f"| {arm} | {row['wall_s']:.2f} | {row['audio_s_per_s']:.1f} | {row['batches']} | {row['joined']} "
              f"| {row['tokens_per_window']} |")  # fmt: skip
    if lengths:
        forced = sum(lengths.values()) / len(lengths)
        print(f"\nForced: {forced:.1f} tokens per window on average (the decoded count should match)")
    print(f"\nRefilled / whole batches: {whole['wall_s'] / refilled['wall_s']:.2f}x; "
          f"windows whose text differs: {differ} of {windows}")  # fmt: skip
    summary = {arm: {k: v for k, v in row.items() if k != "texts"} for arm, row in rows.items()}
    print(json.dumps({"continuous_batching": summary, "texts_differ": differ, "windows": windows}))


if __name__ == "__main__":
    main()
