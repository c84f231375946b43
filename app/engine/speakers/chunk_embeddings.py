"""Each local speaker's voice in each segmentation chunk, with little Python per chunk.

pyannote's ``SpeakerDiarization.get_embeddings`` (same masks, same crops, same output) crops every
chunk in Python, one ``Audio.crop`` each. Here each batch's chunks are cut from the waveform on
the model's device with one gather. Used by the offline diarizer and by pyannote's pretrained
pipelines (``pretrained_steps.py``).

The offline diarizer also skips the local speakers with no active frame in a chunk: CAM++ gives
them NaN anyway, and the clustering never reads them. Most (chunk, speaker) pairs of a
two-person call are silent, and the Python this saves is GIL time the Whisper scheduler and the
other requests wait for. pyannote's WeSpeaker gives silent speakers a vector, which its VBx
clustering's assignment sees, so the pretrained pipelines embed every pair, as pyannote does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from pyannote.core import SlidingWindowFeature


class ChunkEncoder(Protocol):
    """A speaker encoder as pyannote's pipelines hold it (its wrapper, or ``embedding.Embeddings``)."""

    @property
    def dimension(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    def __call__(self, waveforms: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray: ...


def mono(file: Mapping[str, Any]) -> torch.Tensor:
    """The file's (channels, samples) waveform as one channel, as pyannote's Audio downmixes it: the
    channel itself when there is one (a view; averaging would copy hours of audio for nothing)."""
    waveform = torch.as_tensor(file["waveform"])
    return waveform[0] if waveform.shape[0] == 1 else waveform.mean(dim=0)


def embed_chunks(
    encoder: ChunkEncoder,
    file: Mapping[str, Any],
    binary_segmentations: SlidingWindowFeature,
    batch_size: int,
    hook: Callable[..., Any] | None,
    *,
    skip_silent: bool,
    min_clean_frames: int | None = None,
) -> np.ndarray:
    """(chunks, local speakers, dimension): each local speaker's embedding; NaN for silent ones
    when ``skip_silent``. Batches hold ``batch_size`` pairs in pyannote's order (chunk by chunk).

    ``hook`` (when given) is called as pyannote's pipelines call theirs, before and after each batch.
    ``min_clean_frames``: pyannote's ``exclude_overlap``, a speaker's frames where another speaks
    too are left out of its mask when more than this many frames remain (else its whole mask)."""
    window = binary_segmentations.sliding_window
    masks = np.nan_to_num(binary_segmentations.data, nan=0.0).astype(np.float32)  # (chunks, frames, speakers)
    num_chunks, _, num_speakers = masks.shape
    chunk_of, speaker_of = np.nonzero(masks.sum(axis=1) > 0 if skip_silent else np.ones((num_chunks, num_speakers)))
    if min_clean_frames is not None:
        clean = masks * (masks.sum(axis=2, keepdims=True) < 2)
        masks = np.where((clean.sum(axis=1) > min_clean_frames)[:, None, :], clean, masks)

    # Audio.crop(mode="pad") of every chunk: round(start * rate) onwards, zeros past either end.
    rate = file["sample_rate"]
    device = encoder.device
    waveform = mono(file)
    length = round(window.duration * rate)
    starts = np.round((window.start + np.arange(num_chunks) * window.step) * rate).astype(np.int64)
    before = max(0, -int(starts.min(initial=0)))
    after = max(0, int(starts.max(initial=0)) + length - waveform.shape[0])
    padded = F.pad(waveform, (before, after)).to(device)
    offsets = torch.arange(length, device=device)

    embeddings = np.full((num_chunks, num_speakers, encoder.dimension), np.nan, dtype=np.float32)
    total = math.ceil(len(chunk_of) / batch_size)
    if hook is not None:
        hook("embeddings", None, total=total, completed=0)
    for done, first in enumerate(range(0, len(chunk_of), batch_size), 1):
        chunks, speakers = chunk_of[first : first + batch_size], speaker_of[first : first + batch_size]
        index = torch.from_numpy(starts[chunks] + before).to(device)[:, None] + offsets
        batch = encoder(padded[index][:, None, :], masks=torch.from_numpy(masks[chunks, :, speakers]))
        embeddings[chunks, speakers] = batch
        if hook is not None:
            hook("embeddings", batch, total=total, completed=done)
    return embeddings
