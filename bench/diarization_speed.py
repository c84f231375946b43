"""Speed of the offline diarizer alone, in process: seconds per minute of audio, CPU or GPU.

The audio is the pyannote sample call tiled to each length. The first call (model warm-up,
CUDA kernels) is reported apart from the steady-state median. Tiling repeats the same chunks
exactly, which no real recording does, so the speaker count printed is not an accuracy figure
(it drifts to the maximum; ``bench.accuracy`` measures the count on real and synthetic speech).

    python -m bench.diarization_speed                     # CPU, 60 s and 300 s
    python -m bench.diarization_speed --device cuda --lengths 60 600
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", type=float, nargs="+", default=[60.0, 300.0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import app  # noqa: F401  (telemetry off before pyannote loads)
    from app.services.diarization import PyannoteDiarizer, SpeakerHints
    from bench.server import tiled_sample

    started = time.perf_counter()
    diarizer = PyannoteDiarizer.offline(args.device)
    print(f"offline diarizer on {args.device}: built in {time.perf_counter() - started:.1f} s")
    print(f"{'audio s':>8s} {'first s':>8s} {'steady s':>9s} {'s per min':>9s} {'x realtime':>10s} {'speakers':>8s}")
    for seconds in args.lengths:
        audio = tiled_sample(seconds)
        times, speakers = [], 0
        for _ in range(args.repeats + 1):
            begin = time.perf_counter()
            turns = diarizer(audio, SpeakerHints())
            times.append(time.perf_counter() - begin)
            speakers = len({t.speaker for t in turns})
        steady = statistics.median(times[1:])
        print(
            f"{seconds:8.0f} {times[0]:8.2f} {steady:9.2f} {steady * 60 / seconds:9.2f} "
            f"{seconds / steady:10.1f} {speakers:8d}"
        )


if __name__ == "__main__":
    main()
