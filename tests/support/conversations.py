"""Synthetic multi-speaker conversations with exact references, made with espeak-ng and sox.

Each speaker is an espeak-ng voice with its own variant, pitch and rate. Turns come in an
irregular order (no speaker twice in a row, everyone speaks at least twice) with short
pauses between them. Every turn is synthesised, resampled to 16 kHz mono and trimmed of its
leading and trailing silence by sox, so the reference speaker turns (RTTM) and transcript
follow from the clip lengths alone.

    python -m tests.support.conversations --speakers 3 --out /tmp/conv3   # writes .wav, .rttm, .txt
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Voice:
    name: str  # espeak-ng voice+variant
    pitch: int  # 0-99
    rate: int  # words per minute


# Four voices that a speaker encoder, like a listener, takes for four different people
# (two male, two female; different accents, pitches and speeds). espeak-ng's variants share
# one formant synthesiser, and some pairs (en-us+m3 / en-gb+m7) are closer to each other than
# a real person is to himself across sentences; those are left out, not tuned around.
VOICES = (
    Voice("en-us+klatt", 45, 170),
    Voice("en+f1", 60, 175),
    Voice("en-gb-x-rp+f3", 90, 165),
    Voice("en-gb-scotland+m5", 35, 155),
)

SENTENCES = (
    "Thanks for joining the call this morning.",
    "I looked at the numbers from last quarter and they are better than we expected.",
    "Can you send me the report before Friday?",
    "The delivery was delayed because of the weather in the north.",
    "We should talk to the customer about the new contract.",
    "I think the second option is cheaper in the long run.",
    "Our team finished the migration over the weekend.",
    "Let me check my calendar and get back to you.",
    "The printer on the third floor is broken again.",
    "How many people have signed up for the training?",
    "Please remember to lock the door when you leave.",
    "The train was late, so I missed the first meeting.",
    "We need a decision on the budget by the end of the month.",
    "That sounds good to me.",
    "Could you repeat the last part of that?",
    "The new office opens in the spring.",
    "I will ask the finance department for the invoice.",
    "Our website was down for about an hour yesterday.",
    "The interview went well and she starts next week.",
    "Do we have a backup plan if the supplier cannot deliver?",
    "I agree, but the timeline is very tight.",
    "The coffee machine in the kitchen makes a strange noise.",
    "Sales in the west region doubled this year.",
    "Let us meet again on Tuesday at ten.",
)


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Conversation:
    name: str
    wav: Path
    rttm: Path
    transcript: Path
    turns: tuple[Turn, ...]
    voices: dict[str, Voice]  # each speaker's espeak voice

    @property
    def speakers(self) -> int:
        return len({t.speaker for t in self.turns})

    @property
    def text(self) -> str:
        return " ".join(t.text for t in self.turns)


def tools_available() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


def speaker_order(num_speakers: int, num_turns: int, rng: random.Random) -> list[int]:
    """Irregular turn order: never the same speaker twice in a row, everyone at least twice."""
    if num_speakers == 1:
        return [0] * num_turns
    while True:
        order = [rng.randrange(num_speakers)]
        while len(order) < num_turns:
            choice = rng.randrange(num_speakers)
            if choice != order[-1]:
                order.append(choice)
        if all(order.count(s) >= 2 for s in range(num_speakers)):
            return order


def synthesise_clip(voice: Voice, text: str, workdir: Path) -> np.ndarray:
    raw, trimmed = workdir / "raw.wav", workdir / "trimmed.wav"
    subprocess.run(
        ["espeak-ng", "-v", voice.name, "-p", str(voice.pitch), "-s", str(voice.rate), "-w", str(raw), text],
        check=True,
        capture_output=True,
    )
    # 16 kHz mono 16-bit, leading and trailing silence removed (then reversed back).
    subprocess.run(
        ["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(trimmed),
         "silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    with wave.open(str(trimmed), "rb") as handle:
        return np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16).copy()


def make_conversation(num_speakers: int, out_dir: Path, *, seed: int = 0, num_turns: int | None = None) -> Conversation:
    if not 1 <= num_speakers <= len(VOICES):
        raise ValueError(f"1 to {len(VOICES)} speakers")
    rng = random.Random(seed * 10 + num_speakers)
    num_turns = num_turns or 6 + 3 * num_speakers
    order = speaker_order(num_speakers, num_turns, rng)
    voices = rng.sample(VOICES, num_speakers)
    name = f"synthetic-{num_speakers}spk-seed{seed}"
    out_dir.mkdir(parents=True, exist_ok=True)

    pieces: list[np.ndarray] = []
    turns: list[Turn] = []
    cursor = 0
    with tempfile.TemporaryDirectory() as tmp:
        for index, speaker in enumerate(order):
            pause = int(rng.uniform(0.25, 0.9) * SAMPLE_RATE) if index else int(0.5 * SAMPLE_RATE)
            pieces.append(np.zeros(pause, dtype=np.int16))
            cursor += pause
            text = " ".join(rng.sample(SENTENCES, rng.choice((1, 1, 2))))
            clip = synthesise_clip(voices[speaker], text, Path(tmp))
            pieces.append(clip)
            turns.append(Turn(f"spk{speaker}", cursor / SAMPLE_RATE, (cursor + len(clip)) / SAMPLE_RATE, text))
            cursor += len(clip)
    pieces.append(np.zeros(SAMPLE_RATE // 2, dtype=np.int16))

    wav_path = out_dir / f"{name}.wav"
    with wave.open(str(wav_path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE)
        handle.writeframes(np.concatenate(pieces).tobytes())
    rttm_path = out_dir / f"{name}.rttm"
    rttm_path.write_text(
        "".join(
            f"SPEAKER {name} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>\n" for t in turns
        )
    )
    transcript_path = out_dir / f"{name}.txt"
    transcript_path.write_text("\n".join(t.text for t in turns) + "\n")
    spoken = {f"spk{index}": voice for index, voice in enumerate(voices)}
    return Conversation(name, wav_path, rttm_path, transcript_path, tuple(turns), spoken)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speakers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    conversation = make_conversation(args.speakers, args.out, seed=args.seed)
    print(f"{conversation.wav} ({conversation.speakers} speakers, {len(conversation.turns)} turns)")


if __name__ == "__main__":
    main()
