"""Whisper in plain torch: the second ``WhisperEngine``, for the GPU's speed.

CTranslate2 caps the GPU (tens of thousands of kernel launches per batch, unfused attention,
JIT-compiled kernels on anything newer than sm_86, and no CUDA build for ARM64 on PyPI). Here
attention is ``scaled_dot_product_attention``, the encoder runs once per window, beam search
keeps all its state on the device, and on CUDA each decoding step is a captured CUDA graph
(one per batch-size bucket, captured while warming up) replayed per token.

Weights: Hugging Face Whisper checkpoints (hub or folder) or CTranslate2 folders, converted at
load (weights.py). The decoding rules are CTranslate2's (beam_search.py), so both engines give
the same text on the same weights.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.engine.decoding import SHORT_WINDOW_FRAMES, Sampling
from app.engine.whisper.beam_search import (
    SLOT_STEP,
    BeamSearch,
    Hypothesis,
    SearchBuffers,
    SearchShape,
    token_mask,
)
from app.engine.whisper.ctranslate2 import BeamOptions
from app.engine.whisper.engine import (
    AlignmentInput,
    Decoded,
    TokenizerCache,
    alignment_features,
    find_alignment,
    whisper_prompt,
)
from app.engine.whisper.sources import WhisperSource, hub_checkpoint
from app.engine.whisper.torch_model import WhisperNetwork
from app.engine.whisper.weights import read_weights
from app.engine.whisper.word_timing import align
from app.runtime.timing import StepTimer

DEFAULT_MAX_NEW_TOKENS = 224  # what CTranslate2 decodes at most: half of the decoder's 448 positions
_CAPTURE_WAIT_S = 0.5  # the longest a queued graph capture steps aside for waiting batches


def batch_bucket(windows: int) -> int:
    """The batch size a batch of ``windows`` runs at (padded with silence): powers of two to 8,
    then multiples of 8, so a batch wastes little and a few graphs cover every size."""
    if windows <= 8:
        return 1 << (windows - 1).bit_length()
    return -(-windows // 8) * 8


class TorchEngine:
    """One Whisper network on one device; the beam search's buffers and graphs, per batch shape."""

    name = "torch"
    takes_short_windows = True  # the encoder's positional embedding is cut to the frames given
    refills_windows = True  # decode_refilled: windows join a running batch as others end

    def __init__(
        self,
        network: WhisperNetwork,
        tokenizer: Any,
        source: WhisperSource,
        *,
        model_path: Path | None,
        alignment_heads: list[tuple[int, int]],
        suppress_ids: list[int],
        suppress_ids_begin: list[int],
        lang_ids: list[int],
        max_new_tokens: int | None = None,
        cuda_graphs: bool = True,
    ) -> None:
        self.network = network
        self.source = source
        self.model_path = model_path
        self.options = BeamOptions()
        dims = network.dims
        self.multilingual = dims.n_vocab >= 51865
        self._hf_tokenizer = tokenizer
        self._tokenizers = TokenizerCache(tokenizer, self.multilingual)
        self.languages = frozenset(self._tokenizers.languages())
        self.n_mels = dims.n_mels
        parameter = next(network.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype
        self.feature_device = str(self.device) if self.device.type == "cuda" else "cpu"
        self.model_seconds = StepTimer({"encode": 0.0, "decode": 0.0, "align_words": 0.0, "detect_language": 0.0})
        self.max_new_tokens = max_new_tokens or DEFAULT_MAX_NEW_TOKENS
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self._alignment_heads = alignment_heads
        self._lang_ids = lang_ids
        self._suppress = token_mask(dims.n_vocab, suppress_ids, self.device)
        self._suppress_begin = token_mask(dims.n_vocab, suppress_ids_begin, self.device)
        self._buffers: SearchBuffers | None = None
        self._searches: dict[SearchShape, BeamSearch] = {}
        self._queued: set[SearchShape] = set()  # buckets whose graphs a thread captures after prepare()
        self._graph_pool = torch.cuda.graph_pool_handle() if self.cuda_graphs else None
        self._lock = threading.Lock()  # one batch at a time: the buffers are shared
        self._waiting_batches = 0  # batches waiting for ``_lock``
        self._counter_lock = threading.Lock()
        self._eot = tokenizer.token_to_id("<|endoftext|>")
        self._sot = tokenizer.token_to_id("<|startoftranscript|>")
        self._no_speech = tokenizer.token_to_id("<|nospeech|>") or tokenizer.token_to_id("<|nocaptions|>")

    @classmethod
    def load(
        cls,
        source: WhisperSource,
        *,
        device: str,
        compute_type: str,
        cpu_threads: int,
        download_root: str,
        hf_token: str | None,
        max_new_tokens: int | None = None,
        cuda_graphs: bool = True,
    ) -> TorchEngine:
        from tokenizers import Tokenizer

        folder = Path(source.location)
        if not folder.is_dir():  # a hub name: the checkpoint's cached snapshot (downloaded the first time)
            folder = hub_checkpoint(source.location, cache_dir=download_root, token=hf_token)
        if device == "cpu" and cpu_threads:
            torch.set_num_threads(cpu_threads)
        weights = read_weights(folder)
        dtype = _torch_dtype(compute_type, device)
        with torch.device("meta"):
            network = WhisperNetwork(weights.dims)
        state = {name: tensor.to(dtype) for name, tensor in weights.tensors.items()}
        network.load_state_dict(state, assign=True, strict=True)
        network = network.to(device).eval().requires_grad_(False)
        return cls(
            network,
            Tokenizer.from_file(str(folder / "tokenizer.json")),
            source,
            model_path=folder,
            alignment_heads=weights.alignment_heads,
            suppress_ids=weights.suppress_ids,
            suppress_ids_begin=weights.suppress_ids_begin,
            lang_ids=weights.lang_ids,
            max_new_tokens=max_new_tokens,
            cuda_graphs=cuda_graphs,
        )

    def tokenizer(self, language: str, task: str) -> Any:
        return self._tokenizers.get(language, task)

    def prompt(self, tokenizer: Any, initial_prompt: str | None, hotwords: str | None = None) -> list[int]:
        return whisper_prompt(tokenizer, initial_prompt, hotwords)

    @torch.inference_mode()
    def _cross(self, features: np.ndarray, windows: int) -> torch.Tensor:
        """The decoder's cross-attention keys and values of a batch, padded with silent windows to
        ``windows`` (its bucket)."""
        mel = torch.from_numpy(features).to(self.device, self.dtype)
        if windows > mel.shape[0]:
            mel = torch.cat([mel, mel.new_zeros(windows - mel.shape[0], *mel.shape[1:])])
        return self.network.decoder.cross_kv(self.network.encoder(mel))

    def _shape(self, windows: int, prompt: list[int], beams: int, frames: int | None = None) -> tuple[SearchShape, int]:
        """The batch shape a batch runs at, and how many tokens it may decode. ``frames``: the
        log-Mel frames of its windows (a full window's by default); the encoder halves them."""
        dims = self.network.dims
        positions = dims.text_positions
        new_tokens = min(self.max_new_tokens, positions - (len(prompt) - 1))
        slots = min(positions, -(-(len(prompt) - 1 + new_tokens) // SLOT_STEP) * SLOT_STEP)
        audio = None if frames is None else -(-frames // 2)  # the encoder halves the frames
        if audio is not None and audio >= dims.audio_positions:
            audio = None  # a full window
        return SearchShape(batch_bucket(windows), beams, slots, audio), new_tokens

    @torch.inference_mode()
    def prepare(self, batch_size: int, prompt: list[int]) -> None:
        """Every bucket of up to ``batch_size`` windows after ``prompt``, of full windows and of
        live partials' short ones; the largest bucket of full windows at once.

        On CUDA each bucket's graphs (one per cache length) take a fraction of a second to capture,
        all of them seconds of start-up: the others are captured after, on a thread of their own,
        one graph at a time, each after any batch that waits. Until a bucket's graphs are in, its
        batches run padded in the smallest captured bucket of their window length that holds them.
        """
        buckets = sorted({batch_bucket(n) for n in range(1, batch_size + 1)}, reverse=True)  # largest first
        lengths = [None, *sorted(SHORT_WINDOW_FRAMES, reverse=True)]  # full windows first
        beams = self.options.beam_size
        shapes = [self._shape(windows, prompt, beams, frames)[0] for frames in lengths for windows in buckets]
        with self._lock:
            self._search(shapes[0])  # one allocation, for the largest
            later = [shape for shape in shapes[1:] if shape not in self._searches]
            if not self.cuda_graphs:
                for shape in later:
                    self._search(shape)
                return
            self._queued.update(later)
        if later:
            threading.Thread(target=self._capture_later, args=(later,), name="whisper-graphs", daemon=True).start()

    @torch.inference_mode()
    def _capture_later(self, shapes: list[SearchShape]) -> None:
        for shape in shapes:
            with self._lock:
                buffers = self._buffers
                if shape in self._searches or buffers is None or not buffers.holds(shape):
                    self._queued.discard(shape)
                    continue
                search = self._new_search(shape)
            for slots in search.slot_views():
                self._after_waiting_batches()
                with self._lock:  # one graph, then any batch that waits
                    if self._buffers is not buffers:  # grown or released meanwhile: these views are stale
                        break
                    search.capture_view(self._graph_pool, slots)
            with self._lock:
                if self._buffers is buffers:
                    self._searches.setdefault(shape, search)
                self._queued.discard(shape)

    def _after_waiting_batches(self) -> None:
        """Let batches that wait for the engine go first (a lock is not fair), but not for ever:
        under a steady load the graphs still come in, one every ``_CAPTURE_WAIT_S`` at worst."""
        deadline = time.monotonic() + _CAPTURE_WAIT_S
        while self._waiting_batches and time.monotonic() < deadline:
            time.sleep(0.002)

    def _padded(self, shape: SearchShape) -> BeamSearch | None:
        """For a bucket whose graphs are still queued: the smallest captured search that holds its batch."""
        if shape not in self._queued:
            return None
        holding = [
            search
            for search in self._searches.values()
            if (search.shape.beams, search.shape.slots, search.shape.frames) == (shape.beams, shape.slots, shape.frames)
            and search.shape.windows >= shape.windows
        ]
        return min(holding, key=lambda search: search.shape.windows, default=None)

    def decode(
        self, features: np.ndarray, prompt: list[int], sampling: Sampling, *, logprobs: bool = False
    ) -> list[Decoded]:
        found: dict[int, Decoded] = {}
        self.decode_refilled(features, prompt, sampling, lambda _: [], found.__setitem__)
        return [found[number] for number in range(features.shape[0])]

    @torch.inference_mode()
    def decode_refilled(
        self,
        features: np.ndarray,
        prompt: list[int],
        sampling: Sampling,
        more: Callable[[int], list[np.ndarray]],
        deliver: Callable[[int, Decoded], None],
    ) -> None:
        """``decode``, with the places of windows that end taken by ``more(n)``'s windows (up to
        ``n``, of the same length; none: the batch runs out): ``deliver(number, decoded)`` hears
        each window as it ends, numbered in the order they came (``features`` first)."""
        count = features.shape[0]
        beams = 1 if sampling.temperature > 0 else self.options.beam_size
        shape, new_tokens = self._shape(count, prompt, beams, features.shape[2])
        joining_s = 0.0  # the joiners' encoder passes, counted as encoding

        def admit(places: list[int]) -> torch.Tensor | None:
            nonlocal joining_s
            joining = more(len(places))
            if not joining:
                return None
            started = time.perf_counter()
            states = self._cross(np.stack(joining), batch_bucket(len(joining)))[: len(joining)]
            joining_s += time.perf_counter() - started
            return states

        def finished(number: int, best: Hypothesis, no_speech: float) -> None:
            # As WhisperX: the sum of log-probabilities over the tokens and the end of text. The
            # tokens' own log-probabilities come free with the search, so they always come.
            average = best.logprob / (len(best.tokens) + 1)
            deliver(number, Decoded(best.tokens, average, no_speech, token_logprobs=best.token_logprobs))

        with self._waiting():
            search = self._searches.get(shape) or self._padded(shape) or self._search(shape)
            with self.model_seconds("encode"):
                search.cross.copy_(self._cross(features, search.shape.windows))
            started = time.perf_counter()
            search.search(
                prompt,
                max_new_tokens=new_tokens,
                patience=self.options.patience,
                temperature=sampling.temperature,
                no_speech_at=prompt.index(self._sot),
                no_speech_token=self._no_speech,
                windows_used=count,
                finished=finished,
                admit=admit,
            )
            self.model_seconds.add("decode", time.perf_counter() - started - joining_s)
            self.model_seconds.add("encode", joining_s)

    @contextmanager
    def _waiting(self) -> Iterator[None]:
        """The engine's lock for a batch, counted while it waits (graph captures let it go first)."""
        with self._counter_lock:
            self._waiting_batches += 1
        try:
            self._lock.acquire()
        finally:
            with self._counter_lock:
                self._waiting_batches -= 1
        try:
            yield
        finally:
            self._lock.release()

    def _search(self, shape: SearchShape) -> BeamSearch:
        """The beam search for ``shape``: its views of the buffers, and on CUDA its graph."""
        search = self._searches.get(shape)
        if search is not None:
            return search
        if self._buffers is None or not self._buffers.holds(shape):
            # Grow to the larger of the old and new shapes; views (and graphs) of the old go.
            old = self._buffers.shape if self._buffers is not None else shape
            grown = SearchShape(
                max(old.windows, shape.windows),
                max(old.beams, shape.beams),
                max(old.slots, shape.slots),
            )  # the buffers hold full windows' audio states; a short window's are a view
            self.drop_graphs()
            self._buffers = None
            self._buffers = SearchBuffers(self.network, grown, self.dtype, self.device)
        search = self._new_search(shape)
        if self.cuda_graphs:
            for slots in search.slot_views():
                search.capture_view(self._graph_pool, slots)
        self._searches[shape] = search
        return search

    def _new_search(self, shape: SearchShape) -> BeamSearch:
        assert self._buffers is not None
        return BeamSearch(
            self.network,
            self._buffers,
            shape,
            eot=self._eot,
            suppress=self._suppress,
            suppress_begin=self._suppress_begin,
        )

    def release(self) -> None:
        with self._lock:
            self.drop_graphs()
            self._buffers = None
            self.network.to_empty(device="meta")  # the parameters' memory goes now, whoever still holds the module

    def device_memory_mb(self) -> float | None:
        """Weights and the decoding buffers (torch's allocator pools free memory, so the GPU's
        memory in use before and after a load does not show what a model took)."""
        tensors = [*self.network.parameters(), *self.network.buffers()]
        if self._buffers is not None:
            tensors += [t for t in vars(self._buffers).values() if isinstance(t, torch.Tensor)]
        return sum(t.numel() * t.element_size() for t in tensors) / 2**20

    def drop_graphs(self) -> None:
        """Forget every batch shape's search and graphs (their memory pool goes with them)."""
        self._searches.clear()
        # A pool whose graphs are all gone is released: later captures need a new one.
        self._graph_pool = torch.cuda.graph_pool_handle() if self.cuda_graphs else None

    @torch.inference_mode()
    def detect_language(self, features: np.ndarray) -> list[tuple[str, float]]:
        count = features.shape[0]
        with self._waiting():
            with self.model_seconds("encode"):
                # Batch sizes in buckets, as decoding's: the GPU libraries choose kernels per shape once.
                cross = self._cross(features, batch_bucket(count))
            with self.model_seconds("detect_language"):
                start = torch.full((cross.shape[0], 1), self._sot, device=self.device)
                logits, _ = self.network.decoder.forward_with_attention(start, cross, [])
                lang_ids = torch.tensor(self._lang_ids, device=self.device)
                probs = logits[:count, 0].float()[:, lang_ids].softmax(-1)
                best = probs.max(-1)
        tokens = [self._hf_tokenizer.id_to_token(self._lang_ids[i]) for i in best.indices.tolist()]
        return [(token[2:-2], float(p)) for token, p in zip(tokens, best.values.tolist(), strict=True)]

    def alignment_features(self, audio: np.ndarray) -> tuple[np.ndarray, int]:
        return alignment_features(self.n_mels, audio)

    @torch.inference_mode()
    def align_words(self, inputs: list[AlignmentInput], tokenizer: Any) -> list[list[dict[str, Any]]]:
        features = np.stack([i.features for i in inputs])
        texts = [i.tokens for i in inputs]
        with self._waiting():
            with self.model_seconds("encode"):
                cross = self._cross(features, batch_bucket(len(inputs)))
            with self.model_seconds("align_words"):
                paths = align(
                    self.network,
                    cross,
                    start=list(tokenizer.sot_sequence),
                    no_timestamps=tokenizer.no_timestamps,
                    eot=tokenizer.eot,
                    texts=texts,
                    num_frames=[i.num_frames for i in inputs],
                    heads=self._alignment_heads,
                )
        return find_alignment(tokenizer, texts, paths)


def _torch_dtype(compute_type: str, device: str) -> torch.dtype:
    if device == "cpu":
        return torch.float32  # the CPU has no fast half-precision matrix products
    return torch.bfloat16 if "bfloat16" in compute_type else torch.float16
