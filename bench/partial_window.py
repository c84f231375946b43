"""What a shorter encoder input does to live partials: Whisper on the audio so far, not a 30 s window.

A live partial today encodes a full 30 s window (the turn's audio, then silence) whatever the
turn's length. Whisper's encoder also takes a shorter input, its positional embedding cut
(whisper.cpp's ``audio_ctx``): the encoder's cost falls with the frames, the decoder's
cross-attention reads fewer keys. This measures what that does to the partials' text, on the
real two-speaker call, with the torch engine's network on the CPU or GPU:

- each reference turn (the STM's, with 0.3 s before it as the live VAD keeps) is decoded at
  growing prefixes, one every ``--step`` s as a session's partials are;
- each prefix is decoded greedily with the log-Mel window cut to the audio rounded up to
  ``PAD`` seconds (1, 5 and 10 s), and with today's full 30 s window;
- every hypothesis is scored against the turn's final text (the full turn, full window, the same
  decoder): its WER against as many of the final's first words, as ``bench.realtime_latency``
  scores partials; and what a session would have shown of it (``StablePrefix`` over the turn's
  successive hypotheses): that WER and the share of the final's words it covered.

Greedy search for every arm (the service's partials use beam 5), so only the window differs.

    python -m bench.partial_window                         # bundled base on the CPU
    python -m bench.partial_window --smoke                 # tiny.en, 2 turns, 10 s and full windows
    python -m bench.partial_window --model /models/large-v3 --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.engine.audio import SAMPLE_RATE, read_pcm16_wav
from app.engine.decoding import FRAMES_PER_SECOND
from app.live.agreement import StablePrefix
from app.serving.warmup import sample_speech_path
from tests.support.scoring import read_stm_turns, word_error_rate

FULL_S = 30.0
LEAD_S = 0.3  # audio kept before a turn's start, as the live VAD's prefix padding
MAX_TOKENS = 96


def turns(min_s: float) -> list[np.ndarray]:
    """The sample call's reference turns of at least ``min_s`` seconds."""
    folder = sample_speech_path().parent
    audio = read_pcm16_wav(folder / "sample.wav")
    return [
        audio[int(max(0.0, start - LEAD_S) * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
        for start, end, _ in read_stm_turns(folder / "sample.stm")
        if end - start >= min_s
    ]


class GreedyWhisper:
    """The torch engine's network decoding one window greedily, whatever the window's length."""

    def __init__(self, model: str, device: str) -> None:
        import torch

        from app.engine.whisper.sources import resolve_whisper_source
        from app.engine.whisper.stage import Whisper
        from app.engine.whisper.torch_engine import TorchEngine

        source = resolve_whisper_source(model, device, Path("/tmp/partial-window-models"))
        self.engine = TorchEngine.load(
            source,
            device=device,
            compute_type="default",
            cpu_threads=0,
            download_root="/tmp/partial-window-models",
            hf_token=None,
            cuda_graphs=False,
        )
        self.whisper = Whisper(self.engine)
        self.tokenizer = self.engine.tokenizer("en", "transcribe")
        self.prompt = self.engine.prompt(self.tokenizer, None)
        self.torch = torch
        self.encoder_s: dict[float, list[float]] = {}

    def __call__(self, audio: np.ndarray, pad_s: float) -> str:
        torch, network = self.torch, self.engine.network
        frames = int(np.ceil(len(audio) / SAMPLE_RATE / pad_s) * pad_s * FRAMES_PER_SECOND)
        features = self.whisper._features(audio, frames)  # the audio, then silence, cut to ``frames``
        mel = torch.from_numpy(np.ascontiguousarray(features)[None]).to(self.engine.device, self.engine.dtype)
        with torch.inference_mode():
            started = time.perf_counter()
            cross = network.decoder.cross_kv(network.encoder(mel))
            if self.engine.device.type == "cuda":
                torch.cuda.synchronize()
            self.encoder_s.setdefault(pad_s, []).append(time.perf_counter() - started)
            tokens = list(self.prompt)
            for step in range(MAX_TOKENS):
                logits, _ = network.decoder.forward_with_attention(
                    torch.tensor([tokens], device=self.engine.device), cross, []
                )
                scores = logits[0, -1].float() + self.engine._suppress
                if step == 0:
                    scores = scores + self.engine._suppress_begin
                token = int(scores.argmax())
                if token == self.tokenizer.eot:
                    break
                tokens.append(token)
        return str(self.tokenizer.decode(tokens[len(self.prompt) :])).strip()


def score(finals: list[str], hypotheses: list[list[str]]) -> dict[str, float]:
    """Raw hypotheses against the final's first words; and what StablePrefix would have shown."""
    said, heard, shown_said, shown, covered, total = [], [], [], [], 0, 0
    for final, turn in zip(finals, hypotheses, strict=True):
        final_words = final.split()
        stable = StablePrefix()
        for hypothesis in turn:
            words = hypothesis.split()
            said += final_words[: len(words)]
            heard += words
            stable.update(hypothesis)
        shown_said += final_words[: len(stable.shown)]
        shown += stable.shown
        covered, total = covered + min(len(stable.shown), len(final_words)), total + len(final_words)
    return {
        "raw_wer": word_error_rate(" ".join(said), " ".join(heard)),
        "shown_wer": word_error_rate(" ".join(shown_said), " ".join(shown)) if shown else float("nan"),
        "shown_coverage": covered / max(total, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bundled-base")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--step", type=float, default=0.5, help="seconds between a turn's partials")
    parser.add_argument("--first", type=float, default=1.0, help="the first partial's length, s")
    parser.add_argument("--pads", type=float, nargs="+", default=[1.0, 5.0, 10.0, FULL_S])
    parser.add_argument("--max-turns", type=int, default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny.en, 2 turns, 10 s and full windows")
    args = parser.parse_args()
    if args.smoke:
        args.model, args.device, args.pads, args.max_turns, args.step = "bundled-tiny.en", "cpu", [10.0, FULL_S], 2, 1.0
    model = GreedyWhisper(args.model, args.device)
    audio_turns = turns(args.first + args.step)[: args.max_turns]
    finals = [model(turn, FULL_S) for turn in audio_turns]
    model.encoder_s.clear()
    results: dict[str, Any] = {"model": args.model, "device": args.device, "turns": len(audio_turns), "arms": {}}
    print(f"# Partials on a cut window: {len(audio_turns)} turns of the sample call, {args.model} on {args.device}")
    print("| window | partials | raw WER vs final | shown WER | shown coverage | encoder median s |")
    print("|---|---|---|---|---|---|")
    for pad in args.pads:
        hypotheses = []
        for turn in audio_turns:
            lengths = np.arange(args.first, len(turn) / SAMPLE_RATE, args.step)
            hypotheses.append([model(turn[: int(length * SAMPLE_RATE)], pad) for length in lengths])
        figures = score(finals, hypotheses)
        encoder = statistics.median(model.encoder_s[pad])
        name = "full 30 s (today)" if pad >= FULL_S else f"audio, padded to {pad:g} s"
        count = sum(len(h) for h in hypotheses)
        print(
            f"| {name} | {count} | {figures['raw_wer']:.3f} | {figures['shown_wer']:.3f} | "
            f"{figures['shown_coverage']:.0%} | {encoder:.3f} |"
        )
        results["arms"][f"{pad:g}"] = {**figures, "partials": count, "encoder_median_s": encoder}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
