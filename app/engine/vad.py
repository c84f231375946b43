"""Voice activity detection: where the speech is, merged into windows of at most 30 s.

Two detectors:
- ``pyannote`` (default): WhisperX's own VAD, the segmentation model bundled in the whisperx
  wheel, run on the service's device. Same chunks as ``whisperx.load_model(...).transcribe``.
- ``silero``: faster-whisper's bundled Silero ONNX model on the CPU. It needs neither
  pyannote nor Lightning, whose imports dominate start-up time (see bench/cold_start.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from app.engine.audio import SAMPLE_RATE

CHUNK_SECONDS = 30
VAD_ONSET = 0.500  # WhisperX's defaults
VAD_OFFSET = 0.363
_GPU_INFERENCE_BATCH = 128


@dataclass(frozen=True)
class SpeechParams:
    """How speech is told from silence and cut into windows: WhisperX's ``vad_onset``,
    ``vad_offset`` and ``chunk_size``, per request."""

    onset: float = VAD_ONSET  # a stretch becomes speech where the score rises over this
    offset: float | None = None  # and stays speech until it falls under this (None: the detector's own)
    chunk_size: float = CHUNK_SECONDS  # the longest window speech is merged into, seconds


DEFAULT_SPEECH = SpeechParams()


@dataclass(frozen=True)
class SpeechChunk:
    """Up to 30 s of audio with speech, decoded as one Whisper window."""

    start: float
    end: float


class SpeechDetector(Protocol):
    name: str

    def __call__(self, audio: np.ndarray, params: SpeechParams = DEFAULT_SPEECH) -> list[SpeechChunk]: ...


class PyannoteVad:
    name = "pyannote"

    def __init__(self, device: str) -> None:
        import torch
        from whisperx.vads import Pyannote

        self._device = torch.device(device)
        self._vad = Pyannote(
            self._device, token=None, vad_onset=VAD_ONSET, vad_offset=VAD_OFFSET, chunk_size=CHUNK_SECONDS
        )
        if self._device.type == "cuda":
            # 10 s windows every second: 128 per call instead of 32 means a quarter of the LSTM
            # calls, and the same speech windows (checked on the H100 against batches of 32).
            self._vad.vad_pipeline._segmentation.batch_size = _GPU_INFERENCE_BATCH
        self._lock = threading.Lock()

    def __call__(self, audio: np.ndarray, params: SpeechParams = DEFAULT_SPEECH) -> list[SpeechChunk]:
        # The model slides 10 s windows with a 1 s step, so pyannote cuts the waveform into ten
        # overlapping copies of itself. On the device those are views of one upload; from host
        # memory they would be ten host-to-device copies (most of the VAD's time on a GPU).
        waveform = self._vad.preprocess_audio(audio).to(self._device)
        with self._lock:
            scores = self._vad({"waveform": waveform, "sample_rate": SAMPLE_RATE})
        # The scores do not depend on the thresholds: each request binarises them its own way.
        offset = VAD_OFFSET if params.offset is None else params.offset
        merged = self._vad.merge_chunks(scores, params.chunk_size, onset=params.onset, offset=offset)
        return [SpeechChunk(float(c["start"]), float(c["end"])) for c in merged]


class SileroVad:
    name = "silero"

    def __init__(self) -> None:
        from faster_whisper.vad import get_vad_model

        get_vad_model()  # load the ONNX session now, not at the first request

    def __call__(self, audio: np.ndarray, params: SpeechParams = DEFAULT_SPEECH) -> list[SpeechChunk]:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        options = VadOptions(
            threshold=params.onset, neg_threshold=params.offset, max_speech_duration_s=params.chunk_size
        )
        spans = get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE)
        return merge_spans([(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in spans], params.chunk_size)


def merge_spans(spans: list[tuple[float, float]], limit: float = CHUNK_SECONDS) -> list[SpeechChunk]:
    """Join consecutive speech spans into windows no longer than ``limit`` (WhisperX's rule)."""
    chunks: list[SpeechChunk] = []
    if not spans:
        return chunks
    start, end = spans[0]
    for span_start, span_end in spans[1:]:
        if span_end - start > limit and end - start > 0:
            chunks.append(SpeechChunk(start, end))
            start = span_start
        end = span_end
    chunks.append(SpeechChunk(start, end))
    return chunks


def load_speech_detector(method: str, device: str) -> SpeechDetector:
    detectors: dict[str, Any] = {"pyannote": lambda: PyannoteVad(device), "silero": SileroVad}
    detector: SpeechDetector = detectors[method]()
    return detector
