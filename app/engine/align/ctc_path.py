"""WhisperX's CTC trellis and backtracking, the same arithmetic in NumPy instead of torch scalars.

``whisperx.align`` finds each segment's character path with the recursion of torchaudio's
forced-alignment tutorial (``whisperx.alignment.get_trellis`` and ``backtrack``): a Python loop
over the audio frames whose body is a handful of torch operations on CPU tensors, ~10 µs of
dispatch each. For a 30 s window (1,500 frames) that was ~130 ms on the CPU for the trellis
alone, more than the wav2vec2 forward pass on a GPU (bench/throughput.py, issue 13: 7 of the
12.5 s of a 10-minute file with word times and speakers were alignment).

These versions do the same float32 additions and comparisons in the same order, so they give
the same path (tests/unit/test_ctc_path.py checks them against WhisperX's on random
emissions); ``forced_alignment`` uses them.

``Point``, ``CharSpan`` and ``merge_repeats`` are WhisperX's too, defined here because
importing ``whisperx.alignment`` imports transformers (seconds of start-up) for the English,
French, German, Spanish and Italian aligners, which are torchaudio models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Point:
    """``whisperx.alignment.Point``: one step of the path."""

    token_index: int
    time_index: int
    score: float


@dataclass(frozen=True)
class CharSpan:
    """``whisperx.alignment.Segment``: one character's frames [start, end) and mean score."""

    label: str
    start: int
    end: int
    score: float


def merge_repeats(path: list[Point], transcript: str) -> list[CharSpan]:
    """``whisperx.alignment.merge_repeats``: consecutive points of one token become one span."""
    spans = []
    first = 0
    while first < len(path):
        last = first
        while last < len(path) and path[first].token_index == path[last].token_index:
            last += 1
        score = sum(path[k].score for k in range(first, last)) / (last - first)
        spans.append(
            CharSpan(transcript[path[first].token_index], path[first].time_index, path[last - 1].time_index + 1, score)
        )
        first = last
    return spans


def get_trellis(emission: Any, tokens: list[int], blank_id: int = 0) -> Any:
    """``whisperx.alignment.get_trellis``: (frames + 1, tokens + 1) float32 scores."""
    import torch

    scores = emission.numpy() if isinstance(emission, torch.Tensor) else np.asarray(emission)
    scores = scores.astype(np.float32, copy=False)
    num_frames, num_tokens = scores.shape[0], len(tokens)
    trellis = np.empty((num_frames + 1, num_tokens + 1), dtype=np.float32)
    trellis[0, 0] = 0
    # torch's CPU cumsum accumulates float32 in float64 and rounds each sum once.
    trellis[1:, 0] = np.cumsum(scores[:, blank_id], dtype=np.float64).astype(np.float32)
    trellis[0, -num_tokens:] = -np.inf
    trellis[-num_tokens:, 0] = np.inf
    stay = scores[:, blank_id]
    change = scores[:, tokens]  # (frames, tokens)
    for t in range(num_frames):
        np.maximum(trellis[t, 1:] + stay[t], trellis[t, :-1] + change[t], out=trellis[t + 1, 1:])
    return torch.from_numpy(trellis)


def backtrack(trellis: Any, emission: Any, tokens: list[int], blank_id: int = 0) -> list[Any] | None:
    """``whisperx.alignment.backtrack``: the best path as ``Point``s, or None when it fails."""
    import torch

    scores = trellis.numpy()
    emitted = emission.numpy()
    # torch's exp, as WhisperX computes each point's probability
    probabilities = torch.exp(emission).numpy()
    j = scores.shape[1] - 1
    t_start = int(np.argmax(scores[:, j]))
    path = []
    for t in range(t_start, 0, -1):
        stayed = scores[t - 1, j] + emitted[t - 1, blank_id]  # float32 + float32, as in torch
        changed = scores[t - 1, j - 1] + emitted[t - 1, tokens[j - 1]]
        moved = bool(changed > stayed)
        path.append(Point(j - 1, t - 1, float(probabilities[t - 1, tokens[j - 1] if moved else blank_id])))
        if moved:
            j -= 1
            if j == 0:
                break
    else:
        return None
    return path[::-1]
