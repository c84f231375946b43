"""Whisper's own word times from the torch network: cross-attention alignment heads + DTW.

The same computation as CTranslate2's ``WhisperReplica::align`` and openai-whisper's
``timing.py``: run the decoder over the start sequence, no-timestamps, the text and
end-of-text; take the alignment heads' attention over the audio frames that hold speech,
normalise each head over the tokens, median-filter it over time, average the heads, and
walk the cheapest monotonic path (dynamic time warping) from the first token to the last.
faster-whisper turns the path into words (``WhisperModel.find_alignment``), for both engines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from app.engine.whisper.torch_model import WhisperNetwork

_MEDIAN_FILTER_WIDTH = 7
_LENGTH_STEP = 32


@dataclass(frozen=True)
class TokenAlignment:
    """What CTranslate2's ``align`` returns for one sequence (faster-whisper reads these names)."""

    alignments: list[tuple[int, int]]  # (text token index, audio frame) along the path
    text_token_probs: list[float]


def align(
    network: WhisperNetwork,
    cross: torch.Tensor,
    *,
    start: list[int],
    no_timestamps: int,
    eot: int,
    texts: list[list[int]],
    num_frames: list[int],
    heads: list[tuple[int, int]],
) -> list[TokenAlignment | None]:
    """The path of each text through its window's audio (``cross``: one row per text, and maybe
    more rows, of padding); None for an empty text."""
    sequences = [[*start, no_timestamps, *text, eot] for text in texts]
    sequences += [[*start, no_timestamps, eot]] * (cross.shape[0] - len(texts))
    # After the end of text, more of it changes nothing before (attention is causal); lengths in
    # steps of 32 let the GPU libraries reuse the kernels they chose for a shape.
    longest = -(-max(len(s) for s in sequences) // _LENGTH_STEP) * _LENGTH_STEP
    tokens = torch.tensor([s + [eot] * (longest - len(s)) for s in sequences], device=cross.device)
    logits, scores = network.decoder.forward_with_attention(tokens, cross, heads)
    text_probs = logits[..., :eot].float().softmax(-1)
    offset = len(start)
    timed = [b for b, text in enumerate(texts) if text]
    matrices, probabilities = [], []
    for b in timed:
        sequence, text = sequences[b], texts[b]
        length, frames = len(sequence), max(1, num_frames[b] // 2)  # the second convolution halves the frames
        targets = torch.tensor(text, device=cross.device)
        probabilities.append(text_probs[b, offset : offset + len(text)].gather(1, targets[:, None])[:, 0])
        weights = scores[b, :, :length, :frames].float().softmax(-1)
        std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
        weights = _median_filter((weights - mean) / std, _MEDIAN_FILTER_WIDTH).mean(0)
        matrices.append(weights[offset : length - 1].cpu().double().numpy())
    found: list[TokenAlignment | None] = [None] * len(texts)
    if timed:
        paths = negative_dtw(matrices)
        for b, path, p in zip(timed, paths, probabilities, strict=True):
            found[b] = TokenAlignment(path, p.cpu().tolist())
    return found


def _median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    padded = F.pad(x[None], (pad, pad, 0, 0), mode="reflect")[0]
    return padded.unfold(-1, width, 1).sort(dim=-1).values[..., pad]


def negative_dtw(similarities: list[np.ndarray]) -> list[list[tuple[int, int]]]:
    """openai-whisper's ``dtw`` on ``-similarity`` for each matrix: the cheapest monotonic path
    from the first cell to the last, as (token, frame) pairs.

    All matrices at once, one row at a time: along a row the cost is
    ``x[j] + min(entry[j], cost[j - 1])`` (``entry`` the best way in from the row above), so
    ``cost[j] = S[j] + min over k ≤ j of (entry[k] - S[k - 1])`` with ``S`` the row's running
    sum — a prefix scan instead of a loop over frames. Matrices are padded to the largest; a
    cell's cost depends only on the cells above and left of it, so padding changes nothing.
    """
    count = len(similarities)
    rows = max(s.shape[0] for s in similarities)
    cols = max(s.shape[1] for s in similarities)
    x = np.zeros((count, rows, cols))
    for k, similarity in enumerate(similarities):
        x[k, : similarity.shape[0], : similarity.shape[1]] = -similarity
    cost = np.full((count, rows + 1, cols + 1), np.inf)
    trace = np.full((count, rows + 1, cols + 1), 2, dtype=np.int8)  # 0 diagonal, 1 up, 2 left
    trace[:, :, 0] = 1  # the borders: the first column leads up, the first row left
    cost[:, 0, 0] = 0.0
    for i in range(1, rows + 1):
        diagonal, up = cost[:, i - 1, :-1], cost[:, i - 1, 1:]
        entry = np.minimum(diagonal, up)
        running = np.cumsum(x[:, i - 1], axis=1)
        before = np.concatenate([np.zeros((count, 1)), running[:, :-1]], axis=1)
        cost[:, i, 1:] = running + np.minimum.accumulate(entry - before, axis=1)
        left = cost[:, i, :-1]
        trace[:, i, 1:] = np.where(
            (diagonal < up) & (diagonal < left), 0, np.where((up < diagonal) & (up < left), 1, 2)
        )
    return [_backtrack(trace[k], *similarity.shape) for k, similarity in enumerate(similarities)]


def _backtrack(trace: np.ndarray, rows: int, cols: int) -> list[tuple[int, int]]:
    path = []
    i, j = rows, cols
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        step = trace[i, j]
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    path.reverse()
    return path
