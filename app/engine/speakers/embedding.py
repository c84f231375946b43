"""Resemblyzer's GE2E speaker encoder, rebuilt as a batched pyannote.audio ``Model``.

Only the weights come from the ``resemblyzer`` wheel (``resemblyzer/pretrained.pt``). Its
Python package is never imported: it imports librosa and webrtcvad at module level, and its
``embed_utterance`` works one utterance at a time. This module computes the same 40-band
(power, not log) mel spectrogram in torch, so everything runs batched on the CPU or the GPU.

pyannote's ``SpeakerDiarization`` calls the model with a batch of 5 s chunks and, per chunk,
the frame mask of one local speaker. The encoder keeps only that speaker's frames, cuts them
into GE2E's 1.6 s partial utterances and averages the partial embeddings, like
``VoiceEncoder.embed_utterance`` does for a whole utterance.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from pyannote.audio import Model
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from app.runtime.package_files import package_file

SAMPLE_RATE = 16_000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s, the length GE2E was trained on
PARTIAL_STEP = 160  # back to back: chunks already overlap, partials need not
MIN_FRAMES = 40  # under 0.4 s of a speaker there is nothing to embed: NaN, which pyannote skips
TARGET_DBFS = -30.0  # resemblyzer's loudness target; its mel is linear, so gain matters


def resemblyzer_weights() -> Path:
    """Where the installed ``resemblyzer`` wheel keeps its encoder."""
    return package_file("resemblyzer", "pretrained.pt", ships="the GE2E weights")


class GE2EEmbedding(Model):
    """Speaker embeddings (256-d, L2-normalised) for pyannote's diarization pipeline."""

    def __init__(self, weights: Path | None = None) -> None:
        super().__init__(sample_rate=SAMPLE_RATE, num_channels=1)
        self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        import torchaudio

        fbank = torchaudio.functional.melscale_fbanks(
            N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE, norm="slaney", mel_scale="slaney"
        )  # the filters librosa.feature.melspectrogram uses by default
        self.mel_fbank: torch.Tensor
        self.window: torch.Tensor
        self.register_buffer("mel_fbank", fbank, persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        checkpoint = torch.load(weights or resemblyzer_weights(), map_location="cpu", weights_only=True)
        self.load_state_dict(checkpoint["model_state"], strict=False)

    @property
    def dimension(self) -> int:
        return 256

    def mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, samples) → (batch, frames, 40) mel power, framed like librosa (centred, zero-padded)."""
        stft = torch.stft(
            F.pad(waveforms, (N_FFT // 2, N_FFT // 2)),
            N_FFT,
            HOP,
            window=self.window,
            center=False,
            return_complex=True,
        )
        # |X|² from the real and imaginary parts: no complex abs kernel (see patches/).
        ri = torch.view_as_real(stft)
        power = ri[..., 0] ** 2 + ri[..., 1] ** 2  # (batch, freqs, frames)
        return torch.matmul(power.transpose(1, 2), self.mel_fbank)

    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        """(batch, 1, samples) and optional (batch, mask frames) → (batch, 256); NaN rows if too short."""
        audio = waveforms[:, 0, :].float()
        batch, samples = audio.shape
        mel = self.mel(audio)  # (batch, frames, 40)
        frames = mel.shape[1]
        if weights is None:
            active = torch.ones(batch, frames, dtype=torch.bool, device=audio.device)
        else:  # nearest-frame resampling of the segmentation mask onto the 10 ms mel frames
            index = (torch.arange(frames, device=audio.device) * weights.shape[1] // frames).clamp(
                max=weights.shape[1] - 1
            )
            active = weights[:, index] > 0.5

        # Loudness: scale each speaker's frames to TARGET_DBFS (mel power scales with gain²).
        hop_power = F.pad(audio**2, (0, frames * HOP - samples)).reshape(batch, frames, HOP).mean(-1)
        lengths = active.sum(1)
        mean_power = (hop_power * active).sum(1) / lengths.clamp(min=1)
        gain = 10.0 ** (TARGET_DBFS / 10.0) / mean_power.clamp(min=1e-10)
        mel = mel * gain[:, None, None]

        # Keep only the speaker's frames, moved to the front in their original order.
        order = torch.sort((~active).to(torch.int8), dim=1, stable=True).indices
        mel = torch.gather(mel, 1, order[..., None].expand(-1, -1, N_MELS))

        # GE2E's partial utterances: 1.6 s windows, back to back (PARTIAL_STEP), over those frames.
        padded = F.pad(mel, (0, 0, 0, PARTIAL_FRAMES))
        windows = padded.unfold(1, PARTIAL_FRAMES, PARTIAL_STEP).transpose(2, 3)  # (b, w, 160, 40)
        starts = torch.arange(windows.shape[1], device=audio.device) * PARTIAL_STEP
        window_lengths = (lengths[:, None] - starts[None, :]).clamp(0, PARTIAL_FRAMES)
        # A partial counts if it is the first one or at least half full (embed_utterance's coverage rule).
        keep = (window_lengths >= PARTIAL_FRAMES // 2) | ((starts[None, :] == 0) & (window_lengths > 0))
        keep &= lengths[:, None] >= MIN_FRAMES
        embeddings = torch.full((batch, self.dimension), float("nan"), device=audio.device)
        if not bool(keep.any()):
            return embeddings
        item, window = keep.nonzero(as_tuple=True)
        packed = pack_padded_sequence(
            windows[item, window], window_lengths[item, window].cpu(), batch_first=True, enforce_sorted=False
        )
        _, (hidden, _) = self.lstm(packed)
        partial = F.normalize(F.relu(self.linear(hidden[-1])), dim=1)
        summed = torch.zeros(batch, self.dimension, device=audio.device).index_add_(0, item, partial)
        embedded = lengths >= MIN_FRAMES
        embeddings[embedded] = F.normalize(summed[embedded], dim=1)
        return embeddings
