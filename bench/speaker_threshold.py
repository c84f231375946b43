"""The offline diarizer's clustering threshold, measured: DER and speaker counts per threshold.

The offline diarizer clusters CAM++ chunk embeddings with pyannote's agglomerative clustering
(centroid linkage on unit vectors), which stops merging at a distance threshold: the one knob
that decides how many speakers a file has when the request gives no count. This bench runs the
pipeline directly (no server) on speech with references — the pyannote sample call (two real
phone voices), each of its voices alone (one voice must be one speaker), and espeak-ng
conversations of 2, 3 and 4 voices (tests/support/conversations.py) — once per file for
segmentation and embeddings, then clusters at each threshold.

    python -m bench.speaker_threshold [--thresholds 0.8,0.9,1.0] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.conversations import make_conversation
from tests.support.scoring import hypothesis_annotation, reference_annotation


def _monologues(sample: Path, out_dir: Path) -> list[tuple[str, Path, Path]]:
    """Each real voice of the sample call alone: its turns (where the other does not speak), 0.3 s apart."""
    from app.engine.audio import read_pcm16_wav
    from app.engine.speakers.references import wav_bytes

    audio = read_pcm16_wav(sample)
    reference = reference_annotation(sample.with_suffix(".rttm"))
    cases = []
    for speaker in reference.labels():
        others = reference.subset([speaker], invert=True).get_timeline().support()
        alone = reference.label_timeline(speaker).support().extrude(others)
        pieces = [audio[int(s.start * 16000) : int(s.end * 16000)] for s in alone if s.duration >= 0.5]
        gap = np.zeros(int(0.3 * 16000), dtype=np.float32)
        joined = np.concatenate([piece for p in pieces for piece in (p, gap)])
        wav, rttm = out_dir / f"call-{speaker}-alone.wav", out_dir / f"call-{speaker}-alone.rttm"
        wav.write_bytes(wav_bytes(joined))
        rttm.write_text(f"SPEAKER {wav.stem} 1 0.000 {len(joined) / 16000:.3f} <NA> <NA> {speaker} <NA> <NA>\n")
        cases.append((wav.stem, wav, rttm))
    return cases


def _cases(out_dir: Path, seeds: list[int]) -> list[tuple[str, Path, Path]]:
    from app.serving.warmup import sample_speech_path

    sample = sample_speech_path()
    cases = [("pyannote sample", sample, sample.with_suffix(".rttm")), *_monologues(sample, out_dir)]
    for seed in seeds:
        for speakers in (2, 3, 4):
            conversation = make_conversation(speakers, out_dir, seed=seed)
            cases.append((conversation.name, conversation.wav, conversation.rttm))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--thresholds", default="0.7,0.8,0.85,0.9,0.95,1.0,1.05,1.1")
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]

    import torch
    from pyannote.metrics.diarization import DiarizationErrorRate

    from app.engine.audio import read_pcm16_wav
    from app.engine.speakers.offline import HYPERPARAMETERS, build_offline_pipeline

    warnings.filterwarnings("ignore", message="'uem' was approximated")
    pipeline = build_offline_pipeline("cpu")
    cached: dict[str, Any] = {}
    embed = pipeline.get_embeddings

    def get_embeddings(file: Any, *a: Any, **k: Any) -> np.ndarray:  # once per file, whatever the threshold
        if file["uri"] not in cached:
            cached[file["uri"]] = embed(file, *a, **k)
        return cached[file["uri"]]

    pipeline.get_embeddings = get_embeddings  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as out:
        cases = _cases(Path(out), [int(s) for s in args.seeds.split(",")])
        names = "  ".join(f"{name[:18]:>18s}" for name, *_ in cases)
        print(f"{'threshold':>9s} {'cosine':>6s}  {names}  mean DER")
        for threshold in thresholds:
            parameters = {**HYPERPARAMETERS, "clustering": {**HYPERPARAMETERS["clustering"], "threshold": threshold}}
            pipeline.instantiate(parameters)
            cells, ders = [], []
            for name, wav, rttm in cases:
                audio = torch.from_numpy(read_pcm16_wav(wav)[None, :])
                output = pipeline({"waveform": audio, "sample_rate": 16000, "uri": name})
                annotation = getattr(output, "speaker_diarization", output)
                turns = [
                    {"start": s.start, "end": s.end, "speaker": label}
                    for s, _, label in annotation.itertracks(yield_label=True)
                ]
                reference = reference_annotation(rttm)
                der = float(DiarizationErrorRate(collar=0.25)(reference, hypothesis_annotation(turns)))
                ders.append(der)
                cells.append(f"{der:6.1%} {len(annotation.labels())}/{len(reference.labels())} spk")
            cosine = 1 - threshold**2 / 2  # distance between unit vectors → their cosine similarity
            row = "  ".join(f"{c:>18s}" for c in cells)
            print(f"{threshold:9.2f} {cosine:6.3f}  {row}  {np.mean(ders):7.1%}")


if __name__ == "__main__":
    main()
