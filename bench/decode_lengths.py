"""Decode lengths that look like real speech, for models with random weights (benchmarks only).

A random-weight model never emits end-of-text: every window decodes to the token limit, which
no real transcript does (a real 30 s window ends after 60-120 tokens, a 3 s one after a
dozen). ``forced_lengths`` makes the torch engine's beam search end each window at a given
number of tokens instead: from then on every token but end-of-text is suppressed for that
window's rows, inside the step (so CUDA graphs capture it too). The lengths come from a real
model's transcripts of the same audio (``real_lengths``), so the random model decodes as many
tokens per window as a real one would, and batching policies can be compared on it.

Windows are told apart by their log-Mel features: each one's length is looked up by a digest of
its features when it enters a search (a batch's first windows, then every joiner).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from app.engine.decoding import Decoding
from app.engine.whisper.beam_search import BeamSearch
from app.engine.whisper.stage import Whisper
from app.engine.whisper.torch_engine import TorchEngine


def digest(features: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(features).tobytes(), digest_size=12).hexdigest()


def real_lengths(real: Whisper, target: Whisper, windows: list[np.ndarray], decoding: Decoding) -> dict[str, int]:
    """Each window's token count under a real model, by the digest of the features ``target``
    computes for it (the two models may differ in log-Mel bands: 80 for tiny, 128 for large-v3)."""
    engine = real.engine
    tokenizer = engine.tokenizer(decoding.language, decoding.task)
    prompt = engine.prompt(tokenizer, None)
    lengths = {}
    for audio in windows:
        [decoded] = engine.decode(real._features(audio)[None], prompt, decoding.sampling)
        lengths[digest(target._features(audio))] = max(1, len(decoded.tokens))
    return lengths


@contextmanager
def forced_lengths(engine: TorchEngine, lengths: dict[str, int]) -> Iterator[None]:
    """While inside, ``engine``'s searches end each window at ``lengths[digest(features)]`` tokens."""
    arriving: deque[int] = deque()  # the lengths of windows about to enter a search, in order
    decode_refilled, start, advance = engine.decode_refilled, BeamSearch._start, BeamSearch.advance
    eot_only: dict[torch.device, torch.Tensor] = {}

    def length_of(features: np.ndarray) -> int:
        return lengths.get(digest(features), engine.max_new_tokens)

    def decode_counted(features: np.ndarray, prompt: list[int], sampling: Any, more: Callable, deliver: Callable):
        arriving.extend(length_of(f) for f in features)

        def counted_more(count: int) -> list[np.ndarray]:
            joining = more(count)
            arriving.extend(length_of(f) for f in joining)
            return joining

        decode_refilled(features, prompt, sampling, counted_more, deliver)

    def start_counted(search: BeamSearch, prompt: list[int], places: list[int], *args: Any) -> None:
        _targets(search)[places] = torch.tensor([arriving.popleft() for _ in places], device=search.tokens.device)
        start(search, prompt, places, *args)

    def advance_forced(search: BeamSearch, slots: int, sampling: bool = False) -> None:
        targets = _targets(search)
        if search.suppress.device not in eot_only:  # made before any graph capture (its eager warm-up)
            eot_only[search.suppress.device] = _eot_only(search)
        mask = eot_only[search.suppress.device]
        rows = (search.step_index >= targets).repeat_interleave(search.shape.beams)[:, None]
        search.suppress_rows.copy_(torch.where(rows, mask, search.base_suppress))
        advance(search, slots, sampling)

    engine.decode_refilled = decode_counted  # type: ignore[method-assign]
    BeamSearch._start = start_counted  # type: ignore[method-assign]
    BeamSearch.advance = advance_forced  # type: ignore[method-assign]
    engine.drop_graphs()  # graphs captured before hold the unforced step
    try:
        yield
    finally:
        engine.decode_refilled = decode_refilled  # type: ignore[method-assign]
        BeamSearch._start, BeamSearch.advance = start, advance  # type: ignore[method-assign]
        engine.drop_graphs()


def _targets(search: BeamSearch) -> torch.Tensor:
    """The search's per-window lengths, and its suppression made per row (added to the logits)."""
    if not hasattr(search, "targets"):
        rows = search.shape.windows * search.shape.beams
        search.targets = torch.full((search.shape.windows,), 1 << 30, device=search.tokens.device)
        search.base_suppress = search.suppress
        search.suppress_rows = search.suppress.expand(rows, -1).clone()
        search.suppress = search.suppress_rows
    return search.targets


def _eot_only(search: BeamSearch) -> torch.Tensor:
    mask = torch.full_like(search.base_suppress, -float("inf"))
    mask[search.eot] = 0.0
    return mask
