"""Known speakers, measured: are the words of a voice with a reference clip labelled with its
name, and does a voice without one keep an anonymous label?

Conversations are built from different voices: the two real speakers of the bundled phone
call (their turns from its RTTM) and espeak-ng voices (tests/support/conversations.py).
Each voice's **reference clip comes from outside the conversation**: for a real speaker its
longest turn, which the conversation then leaves out; for an espeak voice, sentences the
conversation does not use. Every conversation goes through /transcribe (the real pipeline:
VAD, Whisper, word times, diarization, the known-speaker match) with the references as file
parts, and every word is checked against the voice speaking at its midpoint:

- **named right**: words of voices with a reference labelled with that voice's name;
- **false names**: words of voices without a reference that carry a name (any name), and
  speakers given a name that is not theirs.

Scenarios include voices without a reference, references of voices that are absent, and
the two real speakers (one telephone line, similar voices) with only one of them known.

    python -m bench.known_speakers [--threshold 0.6]   # starts the CPU server (bundled model)
    python -m bench.known_speakers --url http://127.0.0.1:8003
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.engine.audio import read_pcm16_wav
from app.engine.speakers.references import wav_bytes
from app.serving.warmup import sample_speech_path
from tests.support.conversations import SENTENCES, VOICES, speaker_order, synthesise_clip, tools_available
from tests.support.server import running_server

RATE = 16_000
_LEVEL_RMS = 0.05  # every clip at one loudness, as one recording's would be
_REFERENCE_SENTENCES = SENTENCES[:2]  # espeak voices' reference clips say these; conversations never do


@dataclass
class Voice:
    name: str
    reference: np.ndarray  # float32, 16 kHz
    utterances: list[np.ndarray]


@dataclass(frozen=True)
class Scenario:
    title: str
    voices: tuple[str, ...]  # who speaks
    known: tuple[str, ...]  # whose reference clip is sent (may include absent voices)


SCENARIOS = (
    Scenario("2 real voices, both known", ("call-A", "call-B"), ("call-A", "call-B")),
    Scenario("2 real voices, one known", ("call-A", "call-B"), ("call-A",)),
    Scenario("2 espeak voices", ("klatt", "f1"), ("klatt", "f1")),
    Scenario("2 espeak voices", ("rp-f3", "scot-m5"), ("rp-f3", "scot-m5")),
    Scenario("3 espeak voices", ("klatt", "f1", "rp-f3"), ("klatt", "f1", "rp-f3")),
    Scenario("3 espeak voices", ("f1", "rp-f3", "scot-m5"), ("f1", "rp-f3", "scot-m5")),
    Scenario("3 voices, real and espeak", ("call-A", "f1", "scot-m5"), ("call-A", "f1", "scot-m5")),
    Scenario("3 voices, 2 known + 1 absent known", ("klatt", "rp-f3", "scot-m5"), ("klatt", "rp-f3", "call-B")),
    Scenario("2 voices, the other real voice known", ("call-B", "rp-f3"), ("call-A", "rp-f3")),
)


def _level(clip: np.ndarray) -> np.ndarray:
    clip = clip.astype(np.float32)
    return clip * (_LEVEL_RMS / max(float(np.sqrt(np.mean(clip**2))), 1e-6))


def real_voices() -> dict[str, Voice]:
    """The phone call's two speakers: the longest turn is the reference, the other turns (≥ 1 s) speak."""
    sample = sample_speech_path()
    audio = read_pcm16_wav(sample)
    turns: dict[str, list[np.ndarray]] = {}
    for line in sample.with_suffix(".rttm").read_text().splitlines():
        fields = line.split()
        start, duration, speaker = float(fields[3]), float(fields[4]), fields[7]
        turns.setdefault(speaker, []).append(audio[int(start * RATE) : int((start + duration) * RATE)])
    voices = {}
    for letter, speaker in zip("AB", sorted(turns), strict=True):
        clips = sorted(turns[speaker], key=len, reverse=True)
        rest = [_level(c) for c in clips[1:] if len(c) >= RATE]
        voices[f"call-{letter}"] = Voice(f"call-{letter}", _level(clips[0][: 10 * RATE]), rest)
    return voices


def espeak_voices(workdir: Path) -> dict[str, Voice]:
    names = ("klatt", "f1", "rp-f3", "scot-m5")
    voices = {}
    for name, voice in zip(names, VOICES, strict=True):
        reference = np.concatenate([synthesise_clip(voice, s, workdir) for s in _REFERENCE_SENTENCES])
        spoken = [_level(synthesise_clip(voice, s, workdir)) for s in SENTENCES[2:]]
        voices[name] = Voice(name, _level(reference[: 10 * RATE]), spoken)
    return voices


def conversation(voices: list[Voice], seed: int) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """Turns in an irregular order (everyone at least twice), short pauses between: audio and (start, end, voice)."""
    rng = random.Random(seed)
    order = speaker_order(len(voices), 4 + 3 * len(voices), rng)
    used = {voice.name: rng.randrange(len(voice.utterances)) for voice in voices}
    pieces, turns, cursor = [np.zeros(RATE // 2, np.float32)], [], RATE // 2
    for index in order:
        voice = voices[index]
        clip = voice.utterances[used[voice.name] % len(voice.utterances)]
        used[voice.name] += 1
        turns.append((cursor / RATE, (cursor + len(clip)) / RATE, voice.name))
        pause = np.zeros(int(rng.uniform(0.3, 0.8) * RATE), np.float32)
        pieces += [clip, pause]
        cursor += len(clip) + len(pause)
    return np.concatenate(pieces), turns


def voice_at(turns: list[tuple[float, float, str]], start: float, end: float) -> str | None:
    """The voice speaking at the word's midpoint (or within 0.3 s of it, for words the aligner put in a pause)."""
    middle = (start + end) / 2
    nearest = min(turns, key=lambda t: 0.0 if t[0] <= middle <= t[1] else min(abs(t[0] - middle), abs(t[1] - middle)))
    distance = 0.0 if nearest[0] <= middle <= nearest[1] else min(abs(nearest[0] - middle), abs(nearest[1] - middle))
    return nearest[2] if distance <= 0.3 else None


def score(words: list[dict[str, Any]], turns: list[tuple[float, float, str]], known: tuple[str, ...]) -> dict[str, Any]:
    counts = {"known_words": 0, "named_right": 0, "unknown_words": 0, "falsely_named": 0, "unplaced": 0}
    for word in words:
        voice = voice_at(turns, word["start"], word["end"])
        label = word.get("speaker")
        if voice is None:
            counts["unplaced"] += 1
        elif voice in known:
            counts["known_words"] += 1
            counts["named_right"] += label == voice
        else:
            counts["unknown_words"] += 1
            counts["falsely_named"] += label in known
    return counts


def _main_voice(words: list[dict[str, Any]], turns: list[tuple[float, float, str]], label: str) -> str | None:
    """The voice that speaks most of the words labelled ``label``: is a name given to the right voice."""
    voices = [voice_at(turns, w["start"], w["end"]) for w in words if w.get("speaker") == label]
    heard = [v for v in voices if v is not None]
    return max(set(heard), key=heard.count) if heard else None


def run(url: str, voices: dict[str, Voice], timeout: float) -> list[dict[str, Any]]:
    rows = []
    with httpx.Client(base_url=url, timeout=timeout) as http:
        for seed, scenario in enumerate(SCENARIOS):
            audio, turns = conversation([voices[v] for v in scenario.voices], seed)
            files = [("file", ("conversation.wav", wav_bytes(audio), "audio/wav"))]
            files += [
                ("known_speaker_references[]", (f"{v}.wav", wav_bytes(voices[v].reference), "audio/wav"))
                for v in scenario.known
            ]
            started = time.perf_counter()
            reply = http.post("/transcribe", data={"known_speaker_names[]": list(scenario.known)}, files=files)
            reply.raise_for_status()
            body = reply.json()
            counts = score(body["word_segments"], turns, scenario.known)
            matches = body["diarization"]["known_speakers"]
            wrong_names = [
                m["name"] for m in matches if _main_voice(body["word_segments"], turns, m["name"]) != m["name"]
            ]
            rows.append(
                {
                    "scenario": scenario.title,
                    "voices": list(scenario.voices),
                    "known": list(scenario.known),
                    "seconds": round(len(audio) / RATE, 1),
                    "took_s": round(time.perf_counter() - started, 1),
                    **counts,
                    "named_right_share": round(counts["named_right"] / counts["known_words"], 4)
                    if counts["known_words"]
                    else None,
                    "matches": [(m["name"], m["speaker"], m["similarity"]) for m in matches],
                    "wrong_names": wrong_names,
                    "speakers_found": len({t["speaker"] for t in body["diarization"]["turns"]}),
                }
            )
            print(_line(rows[-1]), flush=True)
    return rows


def _line(row: dict[str, Any]) -> str:
    share = row["named_right_share"]
    return (
        f"{row['scenario']:<38} {'+'.join(row['voices']):<26} known {','.join(row['known']):<22} "
        f"named right {share if share is not None else '-':>6} ({row['named_right']}/{row['known_words']}) "
        f"false names {row['falsely_named']}/{row['unknown_words']} words, {len(row['wrong_names'])} speakers  "
        f"matches {row['matches']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running server (default: start the CPU server on the bundled model)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--threshold", type=float, help="KNOWN_SPEAKER_THRESHOLD of the server it starts")
    args = parser.parse_args()
    if not tools_available():
        raise SystemExit("espeak-ng and sox are needed (scripts/bootstrap.sh dev installs them)")
    with tempfile.TemporaryDirectory() as work:
        voices = {**real_voices(), **espeak_voices(Path(work))}
        if args.url:
            rows = run(args.url, voices, args.timeout)
        else:
            env = {"DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "MODEL_CACHE_DIR": str(Path(work) / "models")}
            if args.threshold is not None:
                env["KNOWN_SPEAKER_THRESHOLD"] = str(args.threshold)
            with running_server(env, Path(work) / "server.log", timeout_s=900, every_stage=True) as server:
                rows = run(server.url, voices, args.timeout)
    known = sum(r["known_words"] for r in rows)
    right = sum(r["named_right"] for r in rows)
    unknown = sum(r["unknown_words"] for r in rows)
    false = sum(r["falsely_named"] for r in rows)
    wrong_speakers = sum(len(r["wrong_names"]) for r in rows)
    by_size = {}
    for size in (2, 3):
        chosen = [r for r in rows if len(r["voices"]) == size]
        words = sum(r["known_words"] for r in chosen)
        by_size[f"{size}_voices"] = round(sum(r["named_right"] for r in chosen) / words, 4) if words else None
    summary = {
        "named_right_share": round(right / known, 4) if known else None,
        "named_right_by_voices": by_size,
        "false_name_words": false,
        "unknown_voice_words": unknown,
        "wrongly_named_speakers": wrong_speakers,
        "conversations": len(rows),
    }
    print(
        f"\nnamed right: {summary['named_right_share']} of {known} words "
        f"(2 voices {by_size['2_voices']}, 3 voices {by_size['3_voices']}); "
        f"false names: {false} of {unknown} words of unknown voices, {wrong_speakers} speakers named wrongly"
    )
    print(json.dumps({"summary": summary, "conversations": rows}))


if __name__ == "__main__":
    main()
