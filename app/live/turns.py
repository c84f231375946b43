"""Server VAD for live sessions: where a spoken turn starts and where it ends, as audio arrives.

Silero (faster-whisper's bundled ONNX model, CPU, ~0.1 ms per 32 ms frame) scores each frame
with its recurrent state carried from frame to frame, so audio can come in pieces of any
size. ``TurnDetector`` applies OpenAI's ``server_vad`` rules to the scores: a turn starts at
the first frame at or over ``threshold`` (its audio reaching ``prefix_padding_ms`` back), and
ends after ``silence_duration_ms`` under it. A turn that reaches ``max_turn_s`` is ended there,
so no turn outgrows one Whisper window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.engine.audio import SAMPLE_RATE

FRAME = 512  # samples Silero scores at once at 16 kHz (32 ms)
_CONTEXT = 64  # samples of the previous frame it sees before each frame
_HYSTERESIS = 0.15  # speech continues until the score drops this far under the threshold (Silero's rule)


class StreamingSilero:
    """Speech probability of each 32 ms frame of a stream, frame state kept across calls."""

    def __init__(self) -> None:
        from faster_whisper.vad import get_vad_model

        self._model = get_vad_model()  # one ONNX session per process, shared (it is stateless)
        self._reset()

    def _reset(self) -> None:
        self._state = (np.zeros((1, 1, 128), dtype=np.float32), np.zeros((1, 1, 128), dtype=np.float32))
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Scores for every whole frame completed by ``audio`` (16 kHz float32)."""
        stream = np.concatenate([self._pending, audio.astype(np.float32, copy=False)])
        whole = len(stream) // FRAME * FRAME
        self._pending = stream[whole:]
        if not whole:
            return np.zeros(0, dtype=np.float32)
        frames = stream[:whole].reshape(-1, FRAME)
        contexts = np.concatenate([self._context[None], frames[:-1, -_CONTEXT:]])
        self._context = frames[-1, -_CONTEXT:].copy()
        batch = np.concatenate([contexts, frames], axis=1)
        h, c = self._state
        # The exported model reads the batch as a sequence of frames, its state running through them.
        scores, h, c = self._model.session.run(None, {"input": batch, "h": h, "c": c})
        self._state = (h, c)
        return np.asarray(scores, dtype=np.float32).reshape(-1)


@dataclass(frozen=True)
class ServerVad:
    """OpenAI's ``turn_detection`` of type ``server_vad`` (its defaults)."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500


@dataclass(frozen=True)
class TurnStarted:
    at: int  # sample where the turn's audio starts (prefix padding included)


@dataclass(frozen=True)
class TurnEnded:
    start: int  # sample where the turn's audio started (as TurnStarted said)
    speech_end: int  # sample where speech stopped
    at: int  # sample where the turn's audio ends (the silence that ended it, included)


class TurnDetector:
    """Turns in a stream of frame scores; sample positions count from the session's first sample."""

    def __init__(self, vad: ServerVad, max_turn_s: float, offset: int = 0) -> None:
        self.vad = vad
        self._offset = offset  # the session's sample at which scoring began
        self._max_turn = int(max_turn_s * SAMPLE_RATE)
        self._prefix = vad.prefix_padding_ms * SAMPLE_RATE // 1000
        self._silence = vad.silence_duration_ms * SAMPLE_RATE // 1000
        self._low = max(vad.threshold - _HYSTERESIS, 0.01)
        self.frames = 0  # frames scored so far
        self.turn_start: int | None = None
        self._speech_end: int | None = None  # start of the current run of silence within a turn

    @property
    def in_turn(self) -> bool:
        return self.turn_start is not None

    def push(self, scores: np.ndarray) -> list[TurnStarted | TurnEnded]:
        events: list[TurnStarted | TurnEnded] = []
        for score in scores.tolist():
            start = self._offset + self.frames * FRAME
            end = start + FRAME
            self.frames += 1
            if self.turn_start is None:
                if score >= self.vad.threshold:
                    self.turn_start = max(start - self._prefix, 0)
                    self._speech_end = None
                    events.append(TurnStarted(self.turn_start))
                continue
            if score >= self._low:
                self._speech_end = None
            elif self._speech_end is None:
                self._speech_end = start
            silent_long_enough = self._speech_end is not None and end - self._speech_end >= self._silence
            if silent_long_enough or end - self.turn_start >= self._max_turn:
                speech_end = self._speech_end if self._speech_end is not None else end
                events.append(TurnEnded(self.turn_start, speech_end, end))
                self.turn_start = self._speech_end = None
        return events

    def end_now(self) -> TurnEnded | None:
        """End the open turn here (a commit, or the session closing)."""
        if self.turn_start is None:
            return None
        end = self._offset + self.frames * FRAME
        ended = TurnEnded(self.turn_start, self._speech_end if self._speech_end is not None else end, end)
        self.turn_start = self._speech_end = None
        return ended
