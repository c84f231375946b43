"""A live session's speakers: one label per voice for the whole session, known names included.

Each committed turn is diarized alone, so its diarizer labels (``SPEAKER_00`` …) mean nothing
beyond the turn. The session keeps every voice it has heard — a running mean of its turns'
embeddings, by the diarizer's own embedding model — and the known speakers' reference voices.
After a turn is diarized, its speakers are matched to those voices as known speakers are in a
file (``known.match_voices``: one to one where the similarity reaches the threshold): a match
takes that voice's label or name, a voice heard for the first time gets the session's next
``SPEAKER_nn``. One turn is a few seconds of voice, so its threshold is TURN_MARGIN above the
known-speaker threshold for whole speakers in a file.

A speaker with too little clean speech in a turn to embed (under a second: a "yes") cannot be
told by voice: it takes the label of the session's last speaker, or, in a session's first
turn, a label the first voice heard later will take.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from app.engine.speakers.assignment import assign_speakers
from app.engine.speakers.known import Embed, KnownSpeaker, match_voices, speaker_voices, unit_vector
from app.transcript import DiarizationReport, KnownSpeakerMatch, SpeakerTurn, Transcript

# Measured with bench/live_speakers.py (CAM++, the sample call's two real voices and espeak
# conversations of 2-4 voices, 196 turns, docs/performance.md): at the known-speaker threshold
# (0.6) 85.7 % of turns got their voice's label and 15 a name not theirs; 0.1 above it, 99.0 %
# and none (0.05 above: 95.4 %, one false name).
TURN_MARGIN = 0.1


def turn_threshold(same_voice: float) -> float:
    """The similarity at which one turn's voice is taken for a voice heard before, or a known one."""
    return same_voice + TURN_MARGIN


@dataclass
class _Voice:
    label: str
    total: np.ndarray | None = None  # the sum of its turns' unit voices, weighted by seconds

    @property
    def vector(self) -> np.ndarray:
        assert self.total is not None, "a placeholder has no voice yet"
        return unit_vector(self.total)

    def add(self, voice: np.ndarray, seconds: float) -> None:
        self.total = seconds * voice if self.total is None else self.total + seconds * voice


class SessionSpeakers:
    def __init__(self) -> None:
        self._known: tuple[KnownSpeaker, ...] = ()
        self._known_voices: list[np.ndarray] | None = None  # the references embedded, on first use
        self._heard: list[_Voice] = []
        self._last: str | None = None  # the label of the speaker who spoke last
        self._lock = threading.Lock()  # set_known (the event loop) beside label (a decode thread)

    def set_known(self, known: list[KnownSpeaker]) -> None:
        """The known speakers from now on (``session.update``); their voices are embedded when first needed."""
        with self._lock:
            self._known, self._known_voices = tuple(known), None

    @property
    def known_names(self) -> list[str]:
        return [k.name for k in self._known]

    def label(self, audio: np.ndarray, transcript: Transcript, embed: Embed, threshold: float) -> None:
        """Relabel a diarized turn's speakers (turns, segments, words) with the session's labels."""
        report = transcript.diarization
        if not report.performed or not report.turns:
            return
        with self._lock:
            known, references = self._known, self._references(embed)
            turns = [SpeakerTurn(t.start, t.end, f"turn:{t.speaker}") for t in report.turns]
            voices = speaker_voices(audio, turns, embed)
            seconds = {label: sum(t.end - t.start for t in turns if t.speaker == label) for label in voices}
            matched = self._match(voices, seconds, references, known, threshold, report)
            # In time order: a speaker who cannot be heard takes the label of whoever spoke before.
            labels: dict[str, str] = {}
            for turn in sorted(turns, key=lambda t: t.start):
                label = matched.get(turn.speaker) or labels.get(turn.speaker) or self._last or self._placeholder()
                labels[turn.speaker] = self._last = label
        report.turns = [SpeakerTurn(t.start, t.end, labels[t.speaker]) for t in turns]
        assign_speakers(transcript.segments, report.turns)

    def _match(
        self,
        voices: dict[str, np.ndarray | None],
        seconds: dict[str, float],
        references: list[np.ndarray],
        known: tuple[KnownSpeaker, ...],
        threshold: float,
        report: DiarizationReport,
    ) -> dict[str, str | None]:
        """Labels for the turn's speakers that have a voice (the others: None)."""
        heard = [(label, voice) for label, voice in voices.items() if voice is not None]
        labels: dict[str, str | None] = {label: None for label in voices}
        session = [voice for voice in self._heard if voice.total is not None]
        columns = [*references, *(v.vector for v in session)]
        if heard and columns:
            similarity = np.nan_to_num(np.stack([voice for _, voice in heard]) @ np.stack(columns).T, nan=-1.0)
            for row, column in match_voices(similarity, threshold).items():
                label = heard[row][0]
                if column < len(known):
                    labels[label] = known[column].name
                    match = round(float(similarity[row, column]), 4)
                    report.known_speakers.append(KnownSpeakerMatch(known[column].name, label[len("turn:") :], match))
                else:
                    heard_before = session[column - len(known)]
                    heard_before.add(heard[row][1], seconds[label])
                    labels[label] = heard_before.label
        for label, voice in heard:
            if labels[label] is None:  # a voice not heard before in this session
                new = self._unheard_placeholder() or self._new_voice()
                new.add(voice, seconds[label])
                labels[label] = new.label
        return labels

    def _references(self, embed: Embed) -> list[np.ndarray]:
        """The known speakers' voices, one unit vector each (embedded once per set of known speakers)."""
        if self._known_voices is None:
            clips = [k.audio for k in self._known]
            self._known_voices = [unit_vector(row) for row in np.asarray(embed(clips), np.float64)] if clips else []
        return self._known_voices

    def _new_voice(self) -> _Voice:
        voice = _Voice(f"SPEAKER_{len(self._heard):02d}")
        self._heard.append(voice)
        return voice

    def _placeholder(self) -> str:
        """A label for a voice that cannot be heard yet, in a session that has heard none."""
        return self._new_voice().label

    def _unheard_placeholder(self) -> _Voice | None:
        """A label given before any voice was heard, waiting for the first voice to take it."""
        return next((voice for voice in self._heard if voice.total is None), None)
