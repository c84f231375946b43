"""Accuracy harness: WER and DER of the service, end to end over HTTP, on speech with references.

Data
- The pyannote sample (``pyannote/audio/sample/sample.wav``): a real 30 s two-speaker phone
  call with ``sample.rttm`` (turns) and ``sample.stm`` (words). Run twice: count found
  automatically, and with ``num_speakers=2``.
- Conversations synthesised by ``tests.support.conversations`` (espeak-ng + sox): 2, 3 and 4 voices,
  references written from the clip lengths. ``--quick`` uses the 2-voice one only.

Metrics
- WER with jiwer after ``tests.support.scoring.normalize_text`` (lower-case, punctuation removed,
  apostrophes inside words kept, whitespace collapsed).
- DER with pyannote.metrics, collar 0 and 0.25 s, overlapping speech scored (skip_overlap=False),
  on the turns the service returns in ``diarization.turns``.
- Speakers found against the reference count.
- Speaker-attributed word accuracy: the share of words whose speaker (mapped to the reference
  labels by DER's optimal mapping) is the reference speaker at the word's midpoint; words
  whose midpoint falls outside every reference turn are not counted.

    python -m bench.accuracy             # full: sample + 2/3/4 voices, seeds 0 and 1
    python -m bench.accuracy --quick     # what CI runs: sample + one 2-voice conversation
    python -m bench.accuracy --check     # exit 1 if a target is missed (CI uses this)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.conversations import make_conversation, tools_available
from tests.support.scoring import hypothesis_annotation, read_stm_text, reference_annotation, word_error_rate
from tests.support.server import RunningServer, post_audio, running_server

# The targets, on the CPU machine with the offline diarizer and the bundled model.
DER_TARGET_AUTO = 0.10  # collar 0.25, count found automatically
DER_TARGET_KNOWN = 0.05  # collar 0.25, num_speakers given


@dataclass(frozen=True)
class Case:
    name: str
    wav: Path
    rttm: Path
    reference_text: str
    num_speakers: int | None = None  # passed to the service; None: found automatically


@dataclass
class Row:
    case: Case
    wer: float
    der: float
    der_collar: float
    found: int
    truth: int
    word_accuracy: float
    audio_s: float
    request_s: float
    diarization_s: float

    @property
    def target(self) -> float:
        return DER_TARGET_KNOWN if self.case.num_speakers else DER_TARGET_AUTO

    @property
    def passed(self) -> bool:
        return self.found == self.truth and self.der_collar <= self.target


def sample_cases() -> list[Case]:
    from app.serving.warmup import sample_speech_path

    folder = sample_speech_path().parent
    text = read_stm_text(folder / "sample.stm")
    return [
        Case("pyannote sample (auto)", folder / "sample.wav", folder / "sample.rttm", text),
        Case("pyannote sample (num_speakers=2)", folder / "sample.wav", folder / "sample.rttm", text, 2),
    ]


def synthetic_cases(out_dir: Path, quick: bool) -> list[Case]:
    plan = [(2, 0)] if quick else [(n, seed) for seed in (0, 1) for n in (2, 3, 4)]
    cases = []
    for speakers, seed in plan:
        conversation = make_conversation(speakers, out_dir, seed=seed)
        cases.append(Case(conversation.name, conversation.wav, conversation.rttm, conversation.text))
    return cases


def speaker_word_accuracy(words: list[dict[str, Any]], reference: Any, mapping: dict[str, str]) -> float:
    scored = correct = 0
    for word in words:
        middle = (word["start"] + word["end"]) / 2
        turns = reference.itertracks(yield_label=True)
        truth = {label for segment, _, label in turns if segment.start <= middle < segment.end}
        if not truth:
            continue
        scored += 1
        correct += mapping.get(word.get("speaker") or "") in truth
    return correct / scored if scored else 0.0


def evaluate(server: RunningServer, case: Case) -> Row:
    from pyannote.metrics.diarization import DiarizationErrorRate

    form = {"diarize": "true"}
    if case.num_speakers:
        form["num_speakers"] = str(case.num_speakers)
    with server.client() as client:
        request_s, body = post_audio(client, case.wav, **form)
    if not body["diarization"]["performed"]:
        raise RuntimeError(f"{case.name}: diarization did not run: {body['diarization']['detail']}")

    # pyannote.metrics warns that the scored extent is the union of both annotations: intended.
    warnings.filterwarnings("ignore", message="'uem' was approximated")
    reference = reference_annotation(case.rttm)
    hypothesis = hypothesis_annotation(body["diarization"]["turns"])
    mapping = DiarizationErrorRate().optimal_mapping(reference, hypothesis)
    return Row(
        case=case,
        wer=word_error_rate(case.reference_text, body["text"]),
        der=float(DiarizationErrorRate(collar=0.0, skip_overlap=False)(reference, hypothesis)),
        der_collar=float(DiarizationErrorRate(collar=0.25, skip_overlap=False)(reference, hypothesis)),
        found=len(hypothesis.labels()),
        truth=len(reference.labels()),
        word_accuracy=speaker_word_accuracy(body["word_segments"], reference, mapping),
        audio_s=body["duration"],
        request_s=request_s,
        diarization_s=body["timings"].get("diarization", float("nan")),
    )


def print_table(rows: list[Row], diarizer: str) -> None:
    print(f"\ndiarizer: {diarizer}")
    header = (
        f"{'case':36s} {'WER':>6s} {'DER c0':>7s} {'DER c.25':>8s} {'spk':>5s} {'word spk':>8s} "
        f"{'audio s':>7s} {'diar s':>6s} {'diar xRT':>8s} {'req s':>6s}  target"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        verdict = "ok" if r.passed else "MISSED"
        print(
            f"{r.case.name:36s} {r.wer:6.3f} {r.der:7.3f} {r.der_collar:8.3f} {r.found:>2d}/{r.truth:<2d} "
            f"{r.word_accuracy:8.3f} {r.audio_s:7.1f} {r.diarization_s:6.2f} {r.audio_s / r.diarization_s:8.1f} "
            f"{r.request_s:6.2f}  DER≤{r.target:.0%}, count: {verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the sample and one 2-voice conversation")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--diarizer", default="offline", choices=("auto", "pyannote", "offline"))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if not tools_available():
        print("espeak-ng and sox are needed for the synthetic conversations (apt-get install espeak-ng sox)")
        return 1

    with tempfile.TemporaryDirectory(prefix="accuracy-") as tmp:
        cases = sample_cases() + synthetic_cases(Path(tmp), args.quick)
        env = {"DIARIZER": args.diarizer, "WARMUP": "false"}
        with running_server(env, Path(tmp) / "server.log", every_stage=True) as server:
            diarizer = server.health["stages"]["diarization"]["model"]
            rows = []
            for case in cases:
                rows.append(evaluate(server, case))
                print(f"  {case.name}: done", file=sys.stderr)
    print_table(rows, diarizer)
    if args.json:
        args.json.write_text(json.dumps([{**vars(r), "case": r.case.name} for r in rows], indent=2))
    missed = [r.case.name for r in rows if not r.passed]
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
