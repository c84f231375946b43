"""Whisper's network in plain torch, shaped for batched beam search on a GPU.

- Attention is ``scaled_dot_product_attention`` (flash or memory-efficient kernels on CUDA).
- The decoder's self-attention keys and values live in one static cache tensor written at
  positions held in a device tensor, so a decoding step has the same shapes and addresses
  every time (a CUDA graph can replay it). Beams never move in it: each beam's past is a row
  of a small lineage table (which beam's slot holds each earlier token), and reordering beams
  copies that table, not gigabytes of keys and values.
- Cross-attention keys and values are computed once per window; a window's beams are its
  query rows against that one copy (no per-beam copies of 1,500 frames × layers).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from app.engine.whisper.weights import Dimensions


class _SelfAttention(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)


class _CrossAttention(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)


class _Layer(nn.Module):
    def __init__(self, d_model: int, cross: bool) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = _SelfAttention(d_model)
        if cross:
            self.cross_norm = nn.LayerNorm(d_model)
            self.cross = _CrossAttention(d_model)
        self.mlp_norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, 4 * d_model)
        self.fc2 = nn.Linear(4 * d_model, d_model)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.gelu(self.fc1(self.mlp_norm(x))))


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(rows, time, d) → (rows, heads, time, d / heads)."""
    rows, time, _ = x.shape
    return x.view(rows, time, heads, -1).transpose(1, 2)


def _merge(x: torch.Tensor) -> torch.Tensor:
    rows, heads, time, size = x.shape
    return x.transpose(1, 2).reshape(rows, time, heads * size)


def _by_window(x: torch.Tensor, windows: int, heads: int) -> torch.Tensor:
    """(windows × beams, time, d) → (windows, heads, beams × time, d / heads): a window's beams as one sequence."""
    rows, time, d = x.shape
    beams = rows // windows
    x = x.view(windows, beams, time, heads, d // heads).permute(0, 3, 1, 2, 4)
    return x.reshape(windows, heads, beams * time, d // heads)


def _from_window(x: torch.Tensor, rows: int, time: int) -> torch.Tensor:
    """``_by_window``'s inverse, heads merged: (windows × beams, time, d)."""
    windows, heads, _, size = x.shape
    x = x.view(windows, heads, rows // windows, time, size).permute(0, 2, 3, 1, 4)
    return x.reshape(rows, time, heads * size)


def _by_slot(x: torch.Tensor, windows: int, heads: int) -> torch.Tensor:
    """New keys or values (windows × beams, time, d) → the cache's order (windows, heads, time, beams, d / heads)."""
    rows, time, d = x.shape
    return x.view(windows, rows // windows, time, heads, d // heads).permute(0, 3, 2, 1, 4)


def _blocks(layers: nn.ModuleList) -> list[_Layer]:
    return cast(list[_Layer], list(layers))


class Encoder(nn.Module):
    positions: torch.Tensor

    def __init__(self, dims: Dimensions) -> None:
        super().__init__()
        self.heads = dims.encoder_heads
        self.conv1 = nn.Conv1d(dims.n_mels, dims.d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dims.d_model, dims.d_model, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positions", torch.empty(dims.audio_positions, dims.d_model))
        self.layers = nn.ModuleList(_Layer(dims.d_model, cross=False) for _ in range(dims.encoder_layers))
        self.norm = nn.LayerNorm(dims.d_model)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-Mel windows (batch, mels, 3000) → audio states (batch, 1500, d)."""
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        for layer in _blocks(self.layers):
            q, k, v = layer.attn.qkv(layer.attn_norm(x)).chunk(3, dim=-1)
            attended = F.scaled_dot_product_attention(
                _heads(q, self.heads), _heads(k, self.heads), _heads(v, self.heads)
            )
            x = layer.mlp(x + layer.attn.out(_merge(attended)))
        return self.norm(x)


class Decoder(nn.Module):
    positions: torch.Tensor

    def __init__(self, dims: Dimensions) -> None:
        super().__init__()
        self.heads = dims.decoder_heads
        self.embedding = nn.Parameter(torch.empty(dims.n_vocab, dims.d_model))
        self.register_buffer("positions", torch.empty(dims.text_positions, dims.d_model))
        self.layers = nn.ModuleList(_Layer(dims.d_model, cross=True) for _ in range(dims.decoder_layers))
        self.norm = nn.LayerNorm(dims.d_model)

    def cross_kv(self, audio: torch.Tensor) -> torch.Tensor:
        """Each layer's cross-attention keys and values: (batch, layers, 2, heads, frames, head size)."""
        per_layer = []
        for layer in _blocks(self.layers):
            k, v = layer.cross.kv(audio).chunk(2, dim=-1)
            per_layer.append(torch.stack([_heads(k, self.heads), _heads(v, self.heads)], dim=1))
        return torch.stack(per_layer, dim=1)

    def step(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cache: torch.Tensor,
        lineage: torch.Tensor,
        cross: torch.Tensor,
    ) -> torch.Tensor:
        """The hidden states of ``tokens`` (rows, time) at ``positions``, writing the cache:
        (time,) for every window alike, or (windows, time), each window at its own (windows that
        joined a running batch are at earlier positions than the others).

        Rows are windows × beams, a window's beams next to each other. ``cache`` is
        (windows, layers, 2, heads, slots, beams, head size): a beam's keys stay in the slots
        it wrote them to, and ``lineage`` (windows, beams, slots) says which beam's entry holds
        each earlier token of each beam. So a new beam takes over its parent's past by copying
        one row of ``lineage``, not the cache, and a window's beams read its slots together.
        ``cross`` is ``cross_kv``'s, one entry per window. Each position sees the slots up to itself.
        """
        rows, time = tokens.shape
        windows, beams, slots = lineage.shape
        size = self.embedding.shape[1] // self.heads
        beam_ids = torch.arange(beams, device=tokens.device)
        positions = positions.expand(windows, time)
        # (windows, 1, beams × time, slots × beams): query (beam, t) sees key (slot, beam) of its own past.
        mine = lineage[:, :, None, :, None] == beam_ids
        earlier = torch.arange(slots, device=tokens.device)[None, None, :, None] <= positions[:, :, None, None]
        visible = (mine & earlier[:, None]).view(windows, 1, beams * time, slots * beams)
        x = self.embedding[tokens] + self.positions[positions].repeat_interleave(beams, dim=0)
        # Where each new key goes in (windows, heads, slots, beams, size): its window's positions.
        at = positions[:, None, :, None, None].expand(windows, self.heads, time, beams, size)
        for i, layer in enumerate(_blocks(self.layers)):
            q, k, v = layer.attn.qkv(layer.attn_norm(x)).chunk(3, dim=-1)
            keys, values = cache[:, i, 0], cache[:, i, 1]  # (windows, heads, slots, beams, size)
            keys.scatter_(2, at, _by_slot(k, windows, self.heads))
            values.scatter_(2, at, _by_slot(v, windows, self.heads))
            attended = F.scaled_dot_product_attention(
                _by_window(q, windows, self.heads),
                keys.reshape(windows, self.heads, slots * beams, size),
                values.reshape(windows, self.heads, slots * beams, size),
                attn_mask=visible,
            )
            x = x + layer.attn.out(_from_window(attended, rows, time))
            # A window's beams query its one copy of the audio.
            q = _by_window(layer.cross.q(layer.cross_norm(x)), windows, self.heads)
            attended = F.scaled_dot_product_attention(q, cross[:, i, 0], cross[:, i, 1])
            x = x + layer.cross.out(_from_window(attended, rows, time))
            x = layer.mlp(x)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.embedding.T

    def forward_with_attention(
        self, tokens: torch.Tensor, cross: torch.Tensor, heads: list[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of every position of whole sequences (batch, time), and the raw cross-attention
        scores (scaled q·k, before softmax) of the given (layer, head) pairs: (batch, pairs, time, frames)."""
        _batch, time = tokens.shape
        causal = torch.ones(time, time, dtype=torch.bool, device=tokens.device).tril()
        x = self.embedding[tokens] + self.positions[:time]
        wanted: dict[int, list[int]] = {}
        for layer_index, head in heads:
            wanted.setdefault(layer_index, []).append(head)
        scores: dict[tuple[int, int], torch.Tensor] = {}
        for i, layer in enumerate(_blocks(self.layers)):
            q, k, v = layer.attn.qkv(layer.attn_norm(x)).chunk(3, dim=-1)
            q, k, v = (_heads(t, self.heads) for t in (q, k, v))
            x = x + layer.attn.out(_merge(F.scaled_dot_product_attention(q, k, v, attn_mask=causal)))
            q = _heads(layer.cross.q(layer.cross_norm(x)), self.heads)
            k, v = cross[:, i, 0], cross[:, i, 1]
            if i in wanted:
                logits = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
                for head in wanted[i]:
                    scores[(i, head)] = logits[:, head]
                attended = logits.softmax(-1) @ v
            else:
                attended = F.scaled_dot_product_attention(q, k, v)
            x = x + layer.cross.out(_merge(attended))
            x = layer.mlp(x)
        logits = self.logits(self.norm(x))
        return logits, torch.stack([scores[pair] for pair in heads], dim=1) if heads else logits.new_empty(0)


class WhisperNetwork(nn.Module):
    def __init__(self, dims: Dimensions) -> None:
        super().__init__()
        self.dims = dims
        self.encoder = Encoder(dims)
        self.decoder = Decoder(dims)
