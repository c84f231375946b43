"""Known speakers: diarized speakers named after reference clips of their voices.

Every diarized turn (its speech where no other speaker overlaps it, in pieces of a
reference's length) and every reference clip is embedded by the diarizer's own embedding
model. Then, by cosine similarity:

1. speakers (their turns' voices averaged) take names one to one, by the best assignment
   (Hungarian), where the similarity reaches the threshold; a speaker left over that plainly
   is one of the voices — a voice the diarizer split in two, about as like it as its named
   part — takes that name as well;
2. each turn is judged on its own voice: a turn plainly of one reference takes its name, and
   a named speaker's turn well under its name's threshold drops it — a diarizer that merged
   an unknown voice into a known one does not give both the name.

Everything else keeps the diarizer's ``SPEAKER_nn``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.engine.audio import SAMPLE_RATE
from app.transcript import SpeakerTurn

PIECE_S = 10.0  # a speaker's speech is embedded in pieces as long as the longest reference
MIN_PIECE_S = 1.0  # a shorter leftover piece is not embedded on its own (too little voice)
MIN_SPEECH_S = 1.0  # a turn with less clean speech than this is not judged on its own
# A turn is named on its own voice when it reaches the threshold by TURN_MARGIN and leads every
# other reference by TURN_LEAD; a named speaker's turn TURN_DOUBT under the threshold loses the
# name. One turn is a few seconds of voice: its similarities scatter more than a speaker's.
TURN_MARGIN = 0.02
TURN_LEAD = 0.05
TURN_DOUBT = 0.06
# A speaker left over after the one-to-one naming takes a name already given (a voice the
# diarizer split in two) only if it is as like that voice as the named part, to within this.
SPLIT_GAP = 0.1

Embed = Callable[[list[np.ndarray]], np.ndarray]  # clips (16 kHz) → one row per clip (NaN: too short)


@dataclass(frozen=True)
class VoiceModel:
    """The diarizer's voice embedding, and the cosine similarity at which a voice is taken for a known one."""

    embed: Embed
    same_voice: float


@dataclass(frozen=True)
class KnownSpeaker:
    name: str
    audio: np.ndarray  # 16 kHz mono float32, a clip of this voice alone


@dataclass(frozen=True)
class SpeakerMatch:
    speaker: str  # the diarizer's label
    name: str
    similarity: float  # cosine similarity of the speaker's voice and the name's reference


def name_speakers(
    audio: np.ndarray, turns: list[SpeakerTurn], known: list[KnownSpeaker], embed: Embed, threshold: float
) -> tuple[list[SpeakerTurn], list[SpeakerMatch]]:
    """The turns, named where their voice matches a reference (steps 1 and 2 above), and the
    speakers that took a name."""
    if not turns or not known:
        return list(turns), []
    references = np.stack([unit_vector(row) for row in embed([k.audio for k in known]).astype(np.float64)])
    voices = [_voice(embed, _own_speech(audio, turns, index)) for index in range(len(turns))]
    matches = _speaker_matches(turns, voices, references, known, threshold)
    named = {match.speaker: match.name for match in matches}
    index_of = {k.name: i for i, k in enumerate(known)}
    renamed = []
    for turn, voice in zip(turns, voices, strict=True):
        name = named.get(turn.speaker)
        if voice is not None:
            scores = np.nan_to_num(references @ voice, nan=-1.0)
            if (best := _plainly(scores, threshold)) is not None:
                name = known[best].name  # this turn is plainly that voice
            elif name is not None and scores[index_of[name]] < threshold - TURN_DOUBT:
                name = None  # the speaker's name, but not this voice: the diarizer merged two
        renamed.append(SpeakerTurn(turn.start, turn.end, name or turn.speaker))
    return renamed, matches


def _speaker_matches(
    turns: list[SpeakerTurn],
    voices: list[np.ndarray | None],
    references: np.ndarray,
    known: list[KnownSpeaker],
    threshold: float,
) -> list[SpeakerMatch]:
    """Step 1: names for whole speakers."""
    speaker_voices = {label: _speaker_voice(turns, voices, label) for label in sorted({t.speaker for t in turns})}
    heard = [(label, voice) for label, voice in speaker_voices.items() if voice is not None]
    if not heard:
        return []
    similarity = np.nan_to_num(np.stack([voice for _, voice in heard]) @ references.T, nan=-1.0)
    return [
        SpeakerMatch(heard[row][0], known[column].name, round(float(similarity[row, column]), 4))
        for row, column in match_voices(similarity, threshold).items()
    ]


def match_voices(similarity: np.ndarray, threshold: float) -> dict[int, int]:
    """Voices (rows) matched to references (columns) by their cosine similarities: one to one by
    the best assignment where it reaches the threshold; a row left over that plainly is one of the
    references, and about as like it as the row matched to it (a voice split in two), joins it."""
    from scipy.optimize import linear_sum_assignment

    if similarity.size == 0:
        return {}
    rows, columns = linear_sum_assignment(-similarity)
    paired = {r: c for r, c in zip(rows.tolist(), columns.tolist(), strict=True) if similarity[r, c] >= threshold}
    matched = {column: similarity[row, column] for row, column in paired.items()}
    found = {}
    for row in range(similarity.shape[0]):
        column = paired.get(row)
        if column is None:  # the other part of a voice split in two: plainly that voice, and about
            # as like it as its main part is (a different voice the encoder puts near is not)
            column = _plainly(similarity[row], threshold)
            if column is not None and column in matched and similarity[row, column] < matched[column] - SPLIT_GAP:
                column = None
        if column is not None:
            found[row] = column
    return found


def speaker_voices(audio: np.ndarray, turns: list[SpeakerTurn], embed: Embed) -> dict[str, np.ndarray | None]:
    """Each diarized speaker's voice (unit vector; None: too little clean speech to embed)."""
    voices = [_voice(embed, _own_speech(audio, turns, index)) for index in range(len(turns))]
    return {label: _speaker_voice(turns, voices, label) for label in sorted({t.speaker for t in turns})}


def _plainly(scores: np.ndarray, threshold: float) -> int | None:
    """The reference these similarities plainly point to: over the threshold by TURN_MARGIN, ahead by TURN_LEAD."""
    best = int(np.argmax(scores))
    runner_up = float(np.partition(scores, -2)[-2]) if len(scores) > 1 else -1.0
    if scores[best] >= threshold + TURN_MARGIN and scores[best] - runner_up >= TURN_LEAD:
        return best
    return None


def _speaker_voice(turns: list[SpeakerTurn], voices: list[np.ndarray | None], label: str) -> np.ndarray | None:
    """A speaker's voice: its turns' voices, weighted by their length."""
    weighted = [
        (t.end - t.start) * v for t, v in zip(turns, voices, strict=True) if t.speaker == label and v is not None
    ]
    return unit_vector(np.sum(weighted, axis=0)) if weighted else None


def _own_speech(audio: np.ndarray, turns: list[SpeakerTurn], index: int) -> list[np.ndarray]:
    """Turn ``index``'s speech where no other turn overlaps it, in pieces of at most ``PIECE_S``."""
    own = np.zeros(audio.shape[0], dtype=bool)
    others = np.zeros(audio.shape[0], dtype=bool)
    for position, turn in enumerate(turns):
        span = slice(int(turn.start * SAMPLE_RATE), int(turn.end * SAMPLE_RATE))
        if position == index:
            own[span] = True
        elif turn.speaker != turns[index].speaker:
            others[span] = True
    clean = own & ~others
    if clean.sum() < MIN_SPEECH_S * SAMPLE_RATE:
        clean = own  # only overlapped speech: better than no voice at all
    speech = audio[clean]
    piece = int(PIECE_S * SAMPLE_RATE)
    pieces = [speech[i : i + piece] for i in range(0, speech.shape[0], piece)]
    kept = [p for p in pieces if p.shape[0] >= MIN_PIECE_S * SAMPLE_RATE]
    return kept or ([speech] if speech.shape[0] >= MIN_SPEECH_S * SAMPLE_RATE else [])


def _voice(embed: Embed, pieces: list[np.ndarray]) -> np.ndarray | None:
    if not pieces:
        return None
    vector = _mean(embed(pieces))
    return None if np.isnan(vector).any() else unit_vector(vector)


def _mean(rows: np.ndarray) -> np.ndarray:
    """The mean direction of the rows that are not NaN (each made unit length first)."""
    rows = np.asarray(rows, dtype=np.float64)
    rows = rows[~np.isnan(rows).any(axis=1)]
    if rows.shape[0] == 0:
        return np.full(rows.shape[1], np.nan)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True).clip(min=1e-12)).mean(axis=0)


def unit_vector(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)
