"""Voice activity detection: where the speech is, merged into windows of at most 30 s.

Two detectors:
- ``pyannote`` (default): WhisperX's own VAD, the segmentation model bundled in the whisperx
  wheel, run on the service's device by ``pyannet`` (no pyannote.audio import). Same chunks as
  ``whisperx.load_model(...).transcribe``.
- ``silero``: faster-whisper's bundled Silero ONNX model on the CPU. It needs neither
  torch nor the segmentation model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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
    """WhisperX's VAD model (the segmentation checkpoint in the whisperx wheel), run by
    ``pyannet`` without importing pyannote.audio: the same scores and windows, seconds sooner."""

    name = "pyannote"

    def __init__(self, device: str) -> None:
        import torch

        from app.engine.pyannet import SpeechScores
        from app.runtime.package_files import package_file

        checkpoint = package_file("whisperx", "assets/pytorch_model.bin", ships="WhisperX's VAD model")
        self._device = torch.device(device)
        # 5 s windows every 0.5 s: on a GPU 128 per call instead of 32 means a quarter of the LSTM
        # calls, and the same speech windows (checked on the H100 against batches of 32).
        batch = _GPU_INFERENCE_BATCH if self._device.type == "cuda" else 32
        self._scores = SpeechScores(checkpoint, self._device, batch_size=batch)
        self._lock = threading.Lock()

    def __call__(self, audio: np.ndarray, params: SpeechParams = DEFAULT_SPEECH) -> list[SpeechChunk]:
        import torch

        # The windows overlap ten times over: on the device they are views of one upload; from
        # host memory they would be ten host-to-device copies (most of the VAD's time on a GPU).
        waveform = torch.from_numpy(audio).to(self._device)
        with self._lock:
            scores = self._scores(waveform)
        # The scores do not depend on the thresholds: each request binarises them its own way.
        offset = VAD_OFFSET if params.offset is None else params.offset
        regions = speech_regions(
            scores, self._scores.frame_middle, onset=params.onset, offset=offset, max_duration=params.chunk_size
        )
        return merge_spans(regions, params.chunk_size)


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


def speech_regions(
    scores: np.ndarray, middle: Callable[[int], float], *, onset: float, offset: float | None, max_duration: float
) -> list[tuple[float, float]]:
    """WhisperX's ``Binarize``: hysteresis thresholds, a region longer than ``max_duration`` cut
    at its lowest score in its second half; then regions as pyannote's timeline lists them
    (sorted, once each, none shorter than a microsecond)."""
    offset = offset or onset  # as WhisperX: 0 means "the onset"
    timestamps = [middle(i) for i in range(len(scores))]
    regions: list[tuple[float, float]] = []
    if not timestamps:
        return regions
    start = t = timestamps[0]
    active = scores[0] > onset
    current_scores, current_times = [scores[0]], [start]
    for t, y in zip(timestamps[1:], scores[1:], strict=True):
        if active:
            if t - start > max_duration:
                after = len(current_scores) // 2
                cut = after + int(np.argmin(current_scores[after:]))
                regions.append((start, current_times[cut]))
                start = current_times[cut]
                current_scores, current_times = current_scores[cut + 1 :], current_times[cut + 1 :]
            elif y < offset:
                regions.append((start, t))
                start, active = t, False
                current_scores, current_times = [], []
            current_scores.append(y)
            current_times.append(t)
        elif y > onset:
            start, active = t, True
    if active:
        regions.append((start, t))
    return sorted({r for r in regions if r[1] - r[0] > 1e-6})


def load_speech_detector(method: str, device: str) -> SpeechDetector:
    detectors: dict[str, Any] = {"pyannote": lambda: PyannoteVad(device), "silero": SileroVad}
    detector: SpeechDetector = detectors[method]()
    return detector
