"""Speakers in live sessions, measured: how often a turn gets its voice's session label or name.

A live session diarizes each committed turn alone and gives its speakers the session's labels by
voice (app/live/speakers.py): a turn's voice is compared with the voices the session has heard
and the known speakers' references, and takes a label where the cosine similarity reaches the
threshold. One turn is a few seconds of voice, so the threshold that suits whole speakers in a
file (the known-speaker threshold) may not suit it; this bench runs that labelling turn by turn
(each turn one speaker, so the diarizer is not what is measured) at several thresholds on:

- the pyannote sample call: its two real phone voices, every stretch where one speaks alone
  (≥ 1 s), in order;
- espeak-ng conversations of 2, 3 and 4 voices (tests/support/conversations.py);

each with no known speaker, and with one known (a reference clip of that voice that no turn plays).

Printed per threshold: turns labelled right (labels mapped one to one to the voices, names to
theirs), voices found against voices there, and false names (a turn given a name not its voice's).

    python -m bench.live_speakers [--thresholds 0.6,0.65,0.7] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support.conversations import make_conversation, synthesise_clip
from tests.support.scoring import reference_annotation

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Session:
    name: str
    turns: list[tuple[str, np.ndarray]]  # (the true voice, its audio), in order
    known: dict[str, np.ndarray]  # the true voice → a reference clip no turn plays


def _sample_sessions(sample: Path) -> list[Session]:
    from app.engine.audio import read_pcm16_wav

    audio = read_pcm16_wav(sample)
    reference = reference_annotation(sample.with_suffix(".rttm"))
    alone = []
    for speaker in reference.labels():
        others = reference.subset([speaker], invert=True).get_timeline().support()
        for piece in reference.label_timeline(speaker).support().extrude(others):
            if piece.duration >= 1.0:
                alone.append(
                    (piece.start, speaker, audio[int(piece.start * SAMPLE_RATE) : int(piece.end * SAMPLE_RATE)])
                )
    turns = [(speaker, clip) for _, speaker, clip in sorted(alone, key=lambda item: item[0])]
    sessions = [Session("sample call", turns, {})]
    for speaker in reference.labels():  # its longest piece is the reference, the rest the turns
        longest = max((i for i, (who, _) in enumerate(turns) if who == speaker), key=lambda i: len(turns[i][1]))
        rest = [turn for i, turn in enumerate(turns) if i != longest]
        sessions.append(Session(f"sample call, {speaker} known", rest, {speaker: turns[longest][1]}))
    return sessions


def _espeak_sessions(seeds: list[int], workdir: Path) -> list[Session]:
    from tests.support.conversations import SENTENCES

    sessions = []
    for speakers in (2, 3, 4):
        for seed in seeds:
            conversation = make_conversation(speakers, workdir / f"{speakers}-{seed}", seed=seed)
            audio = _read(conversation.wav)
            turns = [
                (t.speaker, audio[int(t.start * SAMPLE_RATE) : int(t.end * SAMPLE_RATE)]) for t in conversation.turns
            ]
            name = f"espeak {speakers} voices, seed {seed}"
            sessions.append(Session(name, turns, {}))
            # The first voice known, by a clip of sentences no turn says.
            voice = conversation.voices["spk0"]
            said = {t.text for t in conversation.turns}
            unsaid = " ".join([s for s in SENTENCES if s not in said][:3])
            with tempfile.TemporaryDirectory() as tmp:
                clip = synthesise_clip(voice, unsaid, Path(tmp)).astype(np.float32) / 32768
            sessions.append(Session(f"{name}, spk0 known", turns, {"spk0": clip}))
    return sessions


def _read(path: Path) -> np.ndarray:
    from app.engine.audio import read_pcm16_wav

    return read_pcm16_wav(path)


def _score(session: Session, labels: list[str]) -> tuple[int, int, int]:
    """Turns right, voices found, false names."""
    from scipy.optimize import linear_sum_assignment

    truth = [who for who, _ in session.turns]
    names = {f"known:{who}": who for who in session.known}
    false_names = sum(1 for label, who in zip(labels, truth, strict=True) if label in names and names[label] != who)
    unnamed = sorted({label for label in labels if label not in names})
    voices = sorted(set(truth))
    counts = Counter(zip(labels, truth, strict=True))
    right = sum(counts[(label, names[label])] for label in names)
    if unnamed:
        table = np.array([[counts[(label, who)] for who in voices] for label in unnamed])
        rows, columns = linear_sum_assignment(-table)
        right += int(table[rows, columns].sum())
    return right, len(set(labels)), false_names


def _label_session(session: Session, embed, threshold: float) -> list[str]:  # type: ignore[no-untyped-def]
    from app.engine.speakers.known import KnownSpeaker
    from app.live.speakers import SessionSpeakers
    from app.transcript import DiarizationReport, SpeakerTurn, Transcript

    speakers = SessionSpeakers()
    speakers.set_known([KnownSpeaker(f"known:{who}", clip) for who, clip in session.known.items()])
    labels = []
    for _, clip in session.turns:
        seconds = len(clip) / SAMPLE_RATE
        report = DiarizationReport(requested=True, performed=True, turns=[SpeakerTurn(0.0, seconds, "SPEAKER_00")])
        transcript = Transcript(seconds, "en", 1.0, [], None, report)
        speakers.label(clip, transcript, embed, threshold)
        labels.append(report.turns[0].speaker)
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--thresholds", default="0.55,0.6,0.65,0.7,0.75")  # the service: 0.6 + 0.1
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    import torch

    from app.engine.speakers.embedding import SpeakerEmbedding
    from app.serving.warmup import sample_speech_path

    model = SpeakerEmbedding().eval()

    def embed(clips: list[np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return np.stack([model(torch.from_numpy(np.ascontiguousarray(c))[None, None, :]).numpy()[0] for c in clips])

    with tempfile.TemporaryDirectory() as tmp:
        sessions = _sample_sessions(sample_speech_path()) + _espeak_sessions(
            [int(s) for s in args.seeds.split(",")], Path(tmp)
        )
    thresholds = [float(t) for t in args.thresholds.split(",")]
    print(f"{'session':42} {'turns':>5} {'voices':>6} " + " ".join(f"{t:>15}" for t in thresholds))
    totals = {t: [0, 0, 0] for t in thresholds}
    for session in sessions:
        cells = []
        for threshold in thresholds:
            right, found, false_names = _score(session, _label_session(session, embed, threshold))
            totals[threshold][0] += right
            totals[threshold][1] += false_names
            totals[threshold][2] += found != len({who for who, _ in session.turns})
            cells.append(f"{100 * right / len(session.turns):5.1f}% {found}v {false_names}fn")
        voices = len({who for who, _ in session.turns})
        print(f"{session.name:42} {len(session.turns):5} {voices:6} " + " ".join(f"{c:>15}" for c in cells))
    turns = sum(len(s.turns) for s in sessions)
    print(f"{'all: turns right, false names, wrong counts':42} {turns:5} {'':6} " + " ".join(
        f"{100 * totals[t][0] / turns:5.1f}% {totals[t][1]}fn {totals[t][2]}c".rjust(15) for t in thresholds
    ))  # fmt: skip


if __name__ == "__main__":
    main()
