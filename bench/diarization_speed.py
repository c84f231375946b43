"""Speed of the offline diarizer alone, in process: seconds per minute of audio, CPU or GPU.

The audio is the pyannote sample call tiled to each length. The first call (model warm-up,
CUDA kernels) is reported apart from the steady-state median. Tiling repeats the same chunks
exactly, which no real recording does, so the speaker count printed is not an accuracy figure
(it drifts to the maximum; ``bench.accuracy`` measures the count on real and synthetic speech).

    python -m bench.diarization_speed                     # CPU, 60 s and 300 s
    python -m bench.diarization_speed --device cuda --lengths 60 600 --batch-sizes 32:64 128:256

``--batch-sizes`` tries segmentation:embedding batch sizes (default: the diarizer's own). The
steady-state seconds of pyannote's steps are printed beside the total.

``--pretrained-shapes`` times pyannote's pretrained pipeline instead (speaker-diarization-3.1's
networks, segmentation-3.0 and WeSpeaker ResNet34, with random weights: the hub's are out of
reach here), first with pyannote's own frame-level loops, then with the whole-array steps the
service gives it (app/engine/speakers/pretrained_steps.py). Random weights find random speakers:
the step times are the figure, not the count.

    python -m bench.diarization_speed --pretrained-shapes --lengths 600
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", type=float, nargs="+", default=[60.0, 300.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", nargs="*", default=[], help="SEGMENTATION:EMBEDDING, e.g. 32:64")
    parser.add_argument("--pretrained-shapes", action="store_true", help="pyannote pretrained, random weights")
    args = parser.parse_args()

    import app  # noqa: F401  (telemetry off before pyannote loads)
    from app.engine.speakers.diarization import PyannoteDiarizer

    started = time.perf_counter()
    if args.pretrained_shapes:
        import torch

        from app.engine.speakers.pretrained_steps import share_whole_array_steps
        from tests.support.pyannote_reference import pretrained_shaped_pipeline

        pipeline = pretrained_shaped_pipeline().to(torch.device(args.device))
        diarizer = PyannoteDiarizer(pipeline, "pretrained shapes", args.device)
        print(f"speaker-diarization-3.1's shapes, random weights, on {args.device}")
        _table(diarizer, "pyannote's loops", args)
        share_whole_array_steps(pipeline)
        _table(diarizer, "whole arrays", args, header=False)
        return
    diarizer = PyannoteDiarizer.offline(args.device)
    print(f"offline diarizer on {args.device}: built in {time.perf_counter() - started:.1f} s")
    _table(diarizer, "whole arrays", args)


def _table(diarizer: Any, steps_label: str, args: argparse.Namespace, header: bool = True) -> None:
    from app.engine.options import SpeakerHints
    from tests.support.server import tiled_sample

    pipeline = diarizer._pipeline
    settings = [tuple(int(n) for n in pair.split(":")) for pair in args.batch_sizes] or [
        (pipeline.segmentation_batch_size, pipeline.embedding_batch_size)
    ]
    if header:
        columns = ["frame steps", "batches", "audio s", "first s", "steady s", "s per min", "x realtime", "speakers"]
        columns.append("steps (steady) s")
        print("| " + " | ".join(columns) + " |")
        print("|" + "---|" * len(columns))
    for segmentation_batch, embedding_batch in settings:
        pipeline.segmentation_batch_size, pipeline.embedding_batch_size = segmentation_batch, embedding_batch
        for seconds in args.lengths:
            audio = tiled_sample(seconds)
            times, runs = [], []
            for _ in range(args.repeats + 1):
                steps: dict[str, float] = {}
                begin = time.perf_counter()
                turns = diarizer(audio, SpeakerHints(), steps=steps)
                times.append(time.perf_counter() - begin)
                runs.append(steps)
            speakers = len({t.speaker for t in turns})
            steady = statistics.median(times[1:])
            steady_steps = {step: statistics.median(run[step] for run in runs[1:] if step in run) for step in runs[-1]}
            cells = [
                steps_label,
                f"{segmentation_batch}:{embedding_batch}",
                f"{seconds:.0f}",
                f"{times[0]:.2f}",
                f"{steady:.2f}",
                f"{steady * 60 / seconds:.2f}",
                f"{seconds / steady:.1f}",
                str(speakers),
                ", ".join(f"{step} {s:.2f}" for step, s in steady_steps.items()),
            ]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
