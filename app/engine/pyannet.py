"""WhisperX's VAD without pyannote.audio: its segmentation model in plain torch, slid over the
audio and thresholded exactly as pyannote.audio 4.0 and WhisperX do.

Why: ``import pyannote.audio`` imports Lightning, which imports torchmetrics, scipy.signal,
matplotlib and ``torch._dynamo`` — 7–11 s of start-up, more than everything else on the path
to ready. The model is small (SincNet, a 4-layer LSTM, two linear layers) and only needs torch
and asteroid-filterbanks (SincNet's learned filters). The checkpoint is a Lightning checkpoint
whose pickle names pyannote classes; it is read with those classes replaced by inert stand-ins,
so nothing of pyannote is imported. tests/e2e/test_lean_vad.py checks the scores and the
speech windows against pyannote.audio's own ``VoiceActivityDetection`` on real speech.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import pickle
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SAMPLE_RATE = 16000
_SINCNET_KERNELS = (251, 3, 5, 3, 5, 3)  # SincNet's convolutions and poolings, in order
_FOREIGN_MODULES = ("pyannote", "pytorch_lightning", "lightning", "torchmetrics")


class _StandIn:
    """Whatever a pyannote or Lightning object was, unpickled as its arguments and state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _CheckpointUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] in _FOREIGN_MODULES:
            return type(name, (_StandIn,), {})
        return super().find_class(module, name)


_PICKLE = types.SimpleNamespace(Unpickler=_CheckpointUnpickler, load=pickle.load, __name__="pickle")


@dataclass(frozen=True)
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    hyper_parameters: dict[str, Any]
    duration: float  # the chunk length the model was trained on, seconds


def read_checkpoint(path: Path) -> Checkpoint:
    """A pyannote segmentation checkpoint's weights and shape, without importing pyannote."""
    raw = torch.load(path, map_location="cpu", pickle_module=_PICKLE, weights_only=False)  # a bundled file
    specifications = raw["pyannote.audio"]["specifications"]
    fields = specifications.state if isinstance(specifications.state, dict) else specifications.state[1]
    multi_label = fields["problem"].args == (2,)  # Problem.MULTI_LABEL_CLASSIFICATION
    warm_up = tuple(fields.get("warm_up") or (0.0, 0.0))
    if not multi_label or warm_up != (0.0, 0.0) or fields.get("powerset_max_classes") is not None:
        raise ValueError(f"{path}: only multi-label models without warm-up are supported (this one: {fields})")
    return Checkpoint(
        state_dict=raw["state_dict"], hyper_parameters=raw["hyper_parameters"], duration=float(fields["duration"])
    )


class SincNet(nn.Module):
    def __init__(self, stride: int) -> None:
        from asteroid_filterbanks import Encoder, ParamSincFB

        super().__init__()
        self.stride = stride
        self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
        self.conv1d = nn.ModuleList(
            [
                Encoder(ParamSincFB(80, 251, stride=stride, sample_rate=SAMPLE_RATE, min_low_hz=50, min_band_hz=50)),
                nn.Conv1d(80, 60, 5, stride=1),
                nn.Conv1d(60, 60, 5, stride=1),
            ]
        )
        self.pool1d = nn.ModuleList([nn.MaxPool1d(3, stride=3) for _ in range(3)])
        self.norm1d = nn.ModuleList([nn.InstanceNorm1d(n, affine=True) for n in (80, 60, 60)])

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        outputs = self.wav_norm1d(waveforms)
        for c, (conv1d, pool1d, norm1d) in enumerate(zip(self.conv1d, self.pool1d, self.norm1d, strict=True)):
            outputs = conv1d(outputs)
            if c == 0:
                outputs = torch.abs(outputs)
            outputs = F.leaky_relu(norm1d(pool1d(outputs)))
        return outputs

    def strides(self) -> tuple[int, ...]:
        return (self.stride, 3, 1, 3, 1, 3)


class PyanNet(nn.Module):
    """SincNet → LSTM → linear layers → classifier → sigmoid: pyannote's PyanNet, multi-label."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        super().__init__()
        hp = checkpoint.hyper_parameters
        lstm, linear = dict(hp["lstm"]), hp["linear"]
        if not lstm.pop("monolithic", True) or linear["num_layers"] < 1:
            raise ValueError("only monolithic-LSTM PyanNet checkpoints with linear layers are supported")
        lstm["batch_first"] = True
        self.sincnet = SincNet(hp["sincnet"].get("stride", 10))
        self.lstm = nn.LSTM(60, **lstm)
        width = lstm["hidden_size"] * (2 if lstm.get("bidirectional") else 1)
        sizes = [width] + [linear["hidden_size"]] * linear["num_layers"]
        self.linear = nn.ModuleList([nn.Linear(a, b) for a, b in itertools.pairwise(sizes)])
        classes = checkpoint.state_dict["classifier.weight"].shape[0]
        self.classifier = nn.Linear(sizes[-1], classes)
        self.load_state_dict(checkpoint.state_dict, strict=True)
        self.eval().requires_grad_(False)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.lstm(self.sincnet(waveforms).transpose(1, 2))
        for linear in self.linear:
            outputs = F.leaky_relu(linear(outputs))
        return torch.sigmoid(self.classifier(outputs))

    def frames(self) -> tuple[float, float]:
        """One output frame's duration and step, in seconds (pyannote's ``receptive_field``)."""
        strides = self.sincnet.strides()

        def size(frames: int) -> int:
            for kernel, stride in reversed(list(zip(_SINCNET_KERNELS, strides, strict=True))):
                frames = kernel + (frames - 1) * stride
            return frames

        return size(1) / SAMPLE_RATE, (size(2) - size(1)) / SAMPLE_RATE


_tf32_lock = threading.Lock()
_tf32_users = 0
_tf32_saved = (False, True)


@contextlib.contextmanager
def without_tf32(device: torch.device) -> Iterator[None]:
    """TF32 off on a GPU while this model runs, as pyannote's ``fix_reproducibility`` turns it off
    before every inference: the scores then match its own (cuDNN's LSTM with TF32 drifts in the
    last digits). Only while it runs: the flags are process-wide, and pyannote's way (off for
    good) left the speaker encoder's and the aligner's float32 convolutions without TF32 too.
    Counted, so overlapping calls (the VAD and the diarizer on two threads) restore them once."""
    global _tf32_users, _tf32_saved
    if device.type != "cuda":
        yield
        return
    with _tf32_lock:
        if _tf32_users == 0:
            _tf32_saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        _tf32_users += 1
    try:
        yield
    finally:
        with _tf32_lock:
            _tf32_users -= 1
            if _tf32_users == 0:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = _tf32_saved


class ChunkScores:
    """The model slid over a recording as pyannote's ``Inference`` slides it: windows of the
    checkpoint's duration every 10 % of it, the last one zero-padded, scored in batches."""

    def __init__(self, path: Path, device: torch.device, batch_size: int = 32) -> None:
        checkpoint = read_checkpoint(path)
        self.model = PyanNet(checkpoint).to(device)
        self.device, self.batch_size = device, batch_size
        self.duration = checkpoint.duration
        self.step = 0.1 * self.duration
        self.step_samples = round(self.step * SAMPLE_RATE)
        self.frame_duration, self.frame_step = self.model.frames()
        self.window = round(self.duration * SAMPLE_RATE)

    def to(self, device: torch.device) -> None:
        self.model.to(device)
        self.device = device

    @torch.inference_mode()
    def chunks(self, waveform: torch.Tensor, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """(samples,) at 16 kHz, on any device → (chunks, frames, classes) float32 scores, chunk i
        starting at ``i * step`` seconds. ``progress(done, total)`` is called after each batch."""
        waveform = waveform.reshape(1, -1).to(self.device, torch.float32)
        samples, step = waveform.shape[1], self.step_samples
        chunks = waveform.unfold(1, self.window, step).transpose(0, 1) if samples >= self.window else None
        count = 0 if chunks is None else chunks.shape[0]
        has_last = self.has_last(samples)
        batches = [chunks[c : c + self.batch_size] for c in range(0, count, self.batch_size)]  # type: ignore[index]
        if has_last:
            last = waveform[:, count * step :]
            batches.append(F.pad(last, (0, self.window - last.shape[1]))[None])
        outputs = []
        for done, batch in enumerate(batches, 1):
            outputs.append(self._infer(batch))
            if progress is not None:
                progress(done, len(batches))
        return np.vstack(outputs)

    def has_last(self, samples: int) -> bool:
        """Whether the recording ends inside a padded last window (pyannote's slide adds one then)."""
        return samples < self.window or (samples - self.window) % self.step_samples > 0

    def _infer(self, batch: torch.Tensor) -> np.ndarray:
        with without_tf32(self.device):
            result: np.ndarray = self.model(batch).cpu().numpy()
        return result


class SpeechScores(ChunkScores):
    """Frame-level speech scores of a recording: the chunks' scores (``ChunkScores``), the VAD
    pipeline's max over speakers, and pyannote's Hamming-weighted overlap-add."""

    @torch.inference_mode()
    def __call__(self, waveform: torch.Tensor) -> np.ndarray:
        """(samples,) at 16 kHz, on any device → (frames,) float32 scores, one per ``frame_step``."""
        samples = waveform.numel()
        scores = self.chunks(waveform).max(axis=-1, keepdims=True)  # the VAD's pre-aggregation hook
        aggregated = self._aggregate(scores)
        if self.has_last(samples):  # pyannote crops to the recording ("loose": every frame that overlaps it)
            aggregated = aggregated[: math.floor(samples / SAMPLE_RATE / self.frame_step) + 1]
        return aggregated[:, 0]

    def _aggregate(self, scores: np.ndarray) -> np.ndarray:
        """Overlap-add of the chunks' scores, each weighted by a Hamming window (``Inference.aggregate``)."""
        chunks, per_chunk, classes = scores.shape
        hamming = np.hamming(per_chunk).reshape(-1, 1)
        frames = self._closest_frame(self.duration + (chunks - 1) * self.step + 0.5 * self.frame_duration) + 1
        total = np.zeros((frames, classes), dtype=np.float32)
        weight = np.zeros((frames, classes), dtype=np.float32)
        for c in range(chunks):
            first = self._closest_frame(c * self.step + 0.5 * self.frame_duration)
            total[first : first + per_chunk] += scores[c] * hamming
            weight[first : first + per_chunk] += hamming
        # A frame no chunk covers has no weight and no total (a Hamming window is never 0): it
        # comes out 0, as pyannote's "missing" value makes it.
        return total / np.maximum(weight, 1e-12)

    def _closest_frame(self, t: float) -> int:
        return int(np.rint((t - 0.5 * self.frame_duration) / self.frame_step))

    def frame_middle(self, index: int) -> float:
        start = index * self.frame_step  # pyannote's arithmetic, to the last bit: thresholds compare these
        return 0.5 * (start + (start + self.frame_duration))
