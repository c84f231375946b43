"""The offline diarizer's frame-level steps: pyannote's loops against app/engine/speakers/frames.py.

These steps run on the CPU whatever the device (numpy), so the figures hold for a GPU server
too. The audio is the sample call tiled to each length, segmented once by the real model; the
local speakers are spread over two clusters (the cost does not depend on which). Each side runs
these steps as its ``apply`` does: the thresholding and the speaker count, then the
reconstruction and the turns, twice in pyannote's (it also builds an exclusive diarization,
which the service never reads) and once in the offline diarizer's. The turns are compared.

    python -m bench.speaker_frames                  # 60 s and 600 s
    python -m bench.speaker_frames --lengths 600 3600
    python -m bench.speaker_frames --smoke          # 30 s once (CI)

``--pretrained-shapes`` times the same steps inside pyannote's pretrained pipeline
(speaker-diarization-3.1's networks with random weights, segmentation-3.0's powerset output: 10 s
chunks every second), as its ``apply`` runs them, before and after the service gives it the
whole-array steps (app/engine/speakers/pretrained_steps.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
import types
from collections.abc import Callable
from typing import Any

import numpy as np


def _median_run(run: Callable[..., Any], args: tuple[Any, ...], repeats: int) -> tuple[float, Any]:
    """The median seconds of ``repeats`` runs of ``run(*args)``, and the last run's result."""
    times, result = [], None
    for _ in range(repeats):
        begin = time.perf_counter()
        result = run(*args)
        times.append(time.perf_counter() - begin)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=float, nargs="+", default=[60.0, 600.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="30 s once: the harness runs (CI)")
    parser.add_argument("--pretrained-shapes", action="store_true", help="inside pyannote's pretrained pipeline")
    args = parser.parse_args()
    if args.smoke:
        args.lengths, args.repeats = [30.0], 1
    if args.pretrained_shapes:
        _pretrained(args)
        return

    import torch
    from pyannote.audio.pipelines import SpeakerDiarization
    from pyannote.audio.pipelines.utils.diarization import SpeakerDiarizationMixin as Pyannote
    from pyannote.audio.utils.signal import binarize
    from pyannote.core import SlidingWindowFeature

    import app  # noqa: F401  (telemetry off before pyannote loads)
    from app.engine.speakers import frames
    from app.engine.speakers.offline import HYPERPARAMETERS, build_offline_pipeline
    from tests.support.server import tiled_sample

    pipeline = build_offline_pipeline("cpu")
    receptive = pipeline.receptive_field
    reference = types.SimpleNamespace(to_diarization=Pyannote.to_diarization)
    threshold = HYPERPARAMETERS["segmentation"]["threshold"]

    def fresh(feature: SlidingWindowFeature) -> SlidingWindowFeature:  # pyannote writes over its input
        return SlidingWindowFeature(feature.data.copy(), feature.sliding_window)

    def theirs(raw: SlidingWindowFeature, hard: np.ndarray) -> Any:
        binarized = binarize(raw, onset=threshold, initial_state=False)
        count = Pyannote.speaker_count(binarized, receptive, warm_up=(0.0, 0.0))
        outputs = []
        for cap in (np.inf, 1):  # the diarization, then the exclusive one
            capped = SlidingWindowFeature(np.minimum(count.data, cap).astype(np.int8), count.sliding_window)
            discrete = SpeakerDiarization.reconstruct(reference, fresh(raw), hard, capped)
            outputs.append(Pyannote.to_annotation(discrete, min_duration_off=0.0))
        return outputs[0]

    def ours(raw: SlidingWindowFeature, hard: np.ndarray) -> Any:
        count = frames.speaker_count(frames.hysteresis(raw, threshold), receptive)
        discrete = frames.top_speakers(frames.clustered_segmentations(raw, hard), count)
        return frames.active_regions(discrete)

    _print_header()
    for seconds in args.lengths:
        audio = tiled_sample(seconds)
        raw = pipeline.get_segmentations({"waveform": torch.from_numpy(audio[None, :]), "sample_rate": 16000})
        binarized = binarize(raw, onset=threshold, initial_state=False)
        hard = np.random.default_rng(0).integers(0, 2, size=binarized.data.shape[::2]).astype(np.int8)
        hard[np.sum(binarized.data, axis=1) == 0] = -2
        their_s, their_turns = _median_run(theirs, (raw, hard), args.repeats)
        our_s, our_turns = _median_run(ours, (raw, hard), args.repeats)
        _print_row(seconds, len(raw.data), their_s, our_s, our_turns == their_turns)


def _print_header() -> None:
    header = ["audio s", "chunks", "pyannote s", "frames.py s", "speed-up", "same turns"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))


def _print_row(seconds: float, chunks: int, their_s: float, our_s: float, same: bool) -> None:
    cells = [f"{seconds:.0f}", str(chunks), f"{their_s:.3f}", f"{our_s:.3f}", f"{their_s / our_s:.1f}x"]
    print("| " + " | ".join([*cells, "yes" if same else "NO"]) + " |", flush=True)


def _pretrained(args: argparse.Namespace) -> None:
    import torch
    from pyannote.core import SlidingWindowFeature

    import app  # noqa: F401  (telemetry off before pyannote loads)
    from app.engine.speakers.pretrained_steps import share_whole_array_steps
    from tests.support.pyannote_reference import pretrained_shaped_pipeline
    from tests.support.server import tiled_sample

    pipeline = pretrained_shaped_pipeline()
    receptive = pipeline._segmentation.model.receptive_field

    def steps(segmentations: SlidingWindowFeature, hard: np.ndarray) -> Any:
        """``SpeakerDiarization.apply``'s frame-level steps, for a powerset model (no thresholding)."""
        count = pipeline.speaker_count(segmentations, receptive, warm_up=(0.0, 0.0))
        outputs = []
        for cap in (np.inf, 1):  # the diarization, then the exclusive one
            count.data = np.minimum(count.data, cap).astype(np.int8)
            discrete = pipeline.reconstruct(segmentations, hard, count)
            outputs.append(pipeline.to_annotation(discrete, min_duration_on=0.0, min_duration_off=0.0))
        return outputs

    _print_header()
    for seconds in args.lengths:
        audio = tiled_sample(seconds)
        segmentations = pipeline.get_segmentations({"waveform": torch.from_numpy(audio[None, :]), "sample_rate": 16000})
        hard = np.random.default_rng(0).integers(0, 3, size=segmentations.data.shape[::2]).astype(np.int8)
        hard[np.sum(segmentations.data, axis=1) == 0] = -2
        for step in ("speaker_count", "reconstruct", "to_annotation"):
            pipeline.__dict__.pop(step, None)  # pyannote's own first
        their_s, their_turns = _median_run(steps, (segmentations, hard), args.repeats)
        share_whole_array_steps(pipeline)
        our_s, our_turns = _median_run(steps, (segmentations, hard), args.repeats)
        _print_row(seconds, len(segmentations.data), their_s, our_s, our_turns == their_turns)


if __name__ == "__main__":
    main()
