"""Batched beam search for the torch Whisper engine, with CTranslate2's rules.

CTranslate2's ``BeamSearch`` (src/decoding.cc), which faster-whisper and WhisperX decode with:
each step takes the 2 × beam best continuations of a window; an end-of-text among the first
``beam`` of them finishes a hypothesis and the next live candidate takes its place; a window
is done once it holds ``round(beam × patience)`` hypotheses, or at the last step, where the
first ``beam`` candidates all finish; the best is the highest sum of log-probabilities divided
by its length (``length_penalty`` 1). Beam 1 is greedy search; a temperature above 0 draws
one token from the whole distribution (Gumbel-max), as CTranslate2's sampling with top-k 0.

Everything a step does happens on the device, in buffers allocated once per batch shape:
the decoder forward, the log-softmax, the top-k, the bookkeeping and the beams' lineage. So on
CUDA one step is one captured graph (one per cache length it reads), replayed per token. The
tokens are not carried along: each step records its candidates and back-pointers (in a ring
of steps), and a window's finished hypotheses are read back once it is done. The host looks
at the device only every ``_CHECK_EVERY`` steps: to hand on the windows that are done, and
to let waiting windows take their places (continuous batching: each window has its own
position, so a batch never waits for its longest window while others wait outside it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from app.engine.whisper.torch_model import WhisperNetwork

_CHECK_EVERY = 4  # steps between looks at "which windows are done" (each look waits for the GPU)
# Waiting windows join once this share of a batch's places is free (or none is left decoding):
# each joining costs an encoder pass and a prompt pass, so they come in groups.
REFILL_SHARE = 0.25
SLOT_STEP = 32  # cache lengths come in multiples of this: a step reads the multiple that holds its position


@dataclass(frozen=True)
class SearchShape:
    windows: int
    beams: int
    slots: int  # self-attention cache length: prompt + tokens to decode
    frames: int | None = None  # audio states a window's cross-attention reads: a short window's, or all


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]  # without the end-of-text
    logprob: float  # sum of the tokens' log-probabilities, the end-of-text's included
    finished: bool  # ended with end-of-text (not cut by the length limit)
    token_logprobs: list[float]  # each token's own (the end of text's excluded)


class SearchBuffers:
    """The device memory of beam search, sized for the largest batch shape so far; each
    ``BeamSearch`` works on views of it, so shapes share memory (and their graphs' addresses stay put)."""

    def __init__(self, network: WhisperNetwork, shape: SearchShape, dtype: torch.dtype, device: torch.device) -> None:
        dims = network.dims
        windows, beams, slots = shape.windows, shape.beams, shape.slots
        self.shape = shape
        size = dims.d_model // dims.decoder_heads
        # Windows first, so a smaller batch is a leading slice (torch_model.Decoder.step says the rest).
        self.cache = torch.zeros(
            windows, dims.decoder_layers, 2, dims.decoder_heads, slots, beams, size, dtype=dtype, device=device
        )
        self.lineage = torch.zeros(windows, beams, slots, dtype=torch.long, device=device)
        self.cross = torch.zeros(
            windows, dims.decoder_layers, 2, dims.decoder_heads, dims.audio_positions, size, dtype=dtype, device=device
        )
        # Each step's records, in a ring: a window lives at most ``slots`` steps and is read back
        # within ``_CHECK_EVERY`` steps of its end.
        candidates, steps = 2 * beams, record_steps(slots)
        self.top_tokens = torch.zeros(steps, windows, candidates, dtype=torch.long, device=device)
        self.top_parents = torch.zeros(steps, windows, candidates, dtype=torch.long, device=device)
        self.top_scores = torch.zeros(steps, windows, candidates, dtype=torch.float32, device=device)
        self.live = torch.zeros(steps, windows, beams, dtype=torch.long, device=device)  # each new beam's candidate
        self.finishing = torch.zeros(steps, windows, beams, dtype=torch.bool, device=device)

    def holds(self, shape: SearchShape) -> bool:
        mine = self.shape
        fits = shape.windows <= mine.windows and shape.beams <= mine.beams and shape.slots <= mine.slots
        return fits and (shape.frames is None or shape.frames <= self.cross.shape[4])


Finished = Callable[[int, Hypothesis, float], None]  # a window's number, its best hypothesis, no-speech


class BeamSearch:
    """One batch shape: views of the shared buffers, its own small state, and the step that runs on them."""

    def __init__(
        self,
        network: WhisperNetwork,
        buffers: SearchBuffers,
        shape: SearchShape,
        *,
        eot: int,
        suppress: torch.Tensor,
        suppress_begin: torch.Tensor,
    ) -> None:
        assert buffers.holds(shape)
        self.network, self.shape, self.eot = network, shape, eot
        windows, beams, slots = shape.windows, shape.beams, shape.slots
        rows = windows * beams
        steps = record_steps(slots)
        # Views: fewer windows, slots or beams (sampling's one) than the buffers were made for.
        self.cache = buffers.cache[:windows, :, :, :, :slots, :beams]
        self.lineage = buffers.lineage[:windows, :beams, :slots]
        self.cross = buffers.cross[:windows, :, :, :, : shape.frames]
        self.top_tokens = buffers.top_tokens[:steps, :windows, : 2 * beams]
        self.top_parents = buffers.top_parents[:steps, :windows, : 2 * beams]
        self.top_scores = buffers.top_scores[:steps, :windows, : 2 * beams]
        self.live = buffers.live[:steps, :windows, :beams]
        self.finishing = buffers.finishing[:steps, :windows, :beams]
        self.suppress, self.suppress_begin = suppress, suppress_begin
        device = buffers.cache.device
        self.tokens = torch.zeros(rows, dtype=torch.long, device=device)  # each beam's last token
        self.scores = torch.zeros(rows, dtype=torch.float32, device=device)
        # Each window's own clock: windows that joined later are at earlier steps.
        self.step_index = torch.zeros(windows, dtype=torch.long, device=device)
        self.first_position = torch.zeros(windows, dtype=torch.long, device=device)  # step 0's slot: the prompt's last
        self.tick = torch.zeros((), dtype=torch.long, device=device)  # steps run: the records' ring position
        self.last_step = torch.zeros((), dtype=torch.long, device=device)
        self.max_candidates = torch.ones((), dtype=torch.long, device=device)
        self.temperature = torch.zeros((), dtype=torch.float32, device=device)
        self.finished_count = torch.zeros(windows, dtype=torch.long, device=device)
        self.done = torch.zeros(windows, dtype=torch.bool, device=device)
        self.no_speech = torch.zeros(windows, dtype=torch.float32, device=device)
        self._candidate_order = torch.arange(2 * beams, device=device)
        self._beam_ids = torch.arange(beams, device=device)
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}  # by the slots a step reads (slot_view)

    # --- one step, on the device only (capturable) ---

    def slot_view(self, position: int) -> int:
        """How many slots a step at ``position`` reads: enough for it, in steps of ``SLOT_STEP``,
        so early steps read a short cache and each length has its own graph."""
        return min(self.shape.slots, (position // SLOT_STEP + 1) * SLOT_STEP)

    def advance(self, slots: int, sampling: bool = False) -> None:
        """One token for every beam, reading the cache's first ``slots`` slots."""
        decoder, shape = self.network.decoder, self.shape
        windows, beams = shape.windows, shape.beams
        # A window that is done stays where it is (its steps are ignored); the view holds every other.
        position = (self.first_position + self.step_index).clamp(max=slots - 1)[:, None]
        self.lineage.scatter_(
            2, position[:, None].expand(-1, beams, -1), self._beam_ids[None, :, None].expand(windows, -1, 1)
        )
        hidden = decoder.step(
            self.tokens.view(-1, 1),
            position,
            self.cache[:, :, :, :, :slots],
            self.lineage[:, :, :slots],
            self.cross,
        )
        logits = decoder.logits(hidden[:, 0]).float() + self.suppress
        first = (self.step_index == 0).repeat_interleave(beams)[:, None]
        logits = torch.where(first, logits + self.suppress_begin, logits)
        logprobs = logits.log_softmax(-1)
        totals = (self.scores[:, None] + logprobs).view(windows, -1)
        ranking = totals
        if sampling:  # one beam: the tempered log-probability plus Gumbel noise draws from that distribution
            noise = -torch.log(-torch.log(torch.rand_like(logprobs).clamp_(min=1e-20)))
            ranking = (logprobs / self.temperature + noise).view(windows, -1)
        candidate = ranking.topk(2 * beams, dim=-1).indices
        scores = totals.gather(1, candidate)
        vocabulary = logprobs.shape[-1]
        parents, tokens = candidate // vocabulary, candidate % vocabulary
        is_eot = tokens == self.eot
        # The first `beams` non-final candidates live on; end-of-text among the first `beams` finishes.
        live = (is_eot.long() * (2 * beams) + self._candidate_order).argsort(dim=-1)[:, :beams]
        at_last = (self.step_index == self.last_step)[:, None]
        finishing = torch.where(at_last, torch.ones_like(is_eot[:, :beams]), is_eot[:, :beams]) & ~self.done[:, None]
        index = (self.tick % self.top_tokens.shape[0]).view(1)
        self.top_tokens.index_copy_(0, index, tokens[None])
        self.top_parents.index_copy_(0, index, parents[None])
        self.top_scores.index_copy_(0, index, scores[None])
        self.live.index_copy_(0, index, live[None])
        self.finishing.index_copy_(0, index, finishing[None])
        self.finished_count += finishing.sum(-1)
        self.step_index += ~self.done
        self.done |= self.finished_count >= self.max_candidates
        # Each new beam inherits its parent's past: a row of the lineage, not the cache.
        inherited = parents.gather(1, live)[:, :, None].expand(-1, -1, self.lineage.shape[-1])
        self.lineage.copy_(self.lineage.gather(1, inherited))
        self.tokens.copy_(tokens.gather(1, live).view(-1))
        self.scores.copy_(scores.gather(1, live).view(-1))
        self.tick += 1

    def slot_views(self) -> range:
        """The cache lengths a search reads, each with its own graph."""
        return range(SLOT_STEP, self.shape.slots + 1, SLOT_STEP)

    def capture_view(self, pool: Any, slots: int) -> None:
        """Record ``advance`` over ``slots`` as a CUDA graph (after eager runs, as torch requires)."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.advance(slots)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        # Thread-local: other stages may load or run on the GPU from their own threads meanwhile.
        with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
            self.advance(slots)
        self._graphs[slots] = graph

    # --- a whole search ---

    def run(self, prompt: list[int], **options: Any) -> tuple[list[Hypothesis], list[float]]:
        """Decode after ``prompt`` from ``self.cross`` (filled by the caller), as ``search`` with
        ``options`` but no joiners: the best hypothesis of each of the first ``windows_used``
        windows, and its no-speech probability, in order."""
        found: dict[int, tuple[Hypothesis, float]] = {}
        self.search(
            prompt, finished=lambda number, best, no_speech: found.__setitem__(number, (best, no_speech)), **options
        )
        ordered = [found[number] for number in sorted(found)]
        return [best for best, _ in ordered], [no_speech for _, no_speech in ordered]

    def search(
        self,
        prompt: list[int],
        *,
        max_new_tokens: int,
        patience: float,
        temperature: float,
        no_speech_at: int,
        no_speech_token: int,
        finished: Finished,
        windows_used: int | None = None,
        admit: Callable[[list[int]], torch.Tensor | None] | None = None,
    ) -> None:
        """Decode after ``prompt`` from ``self.cross`` (filled by the caller), handing each window
        to ``finished`` as soon as it is done: its best hypothesis, and its no-speech probability
        at prompt position ``no_speech_at``. Windows are numbered in the order they came: the
        first ``windows_used`` (the rest pad the batch to its shape and are done from the
        start), then the joiners.

        ``admit(places)``, where given, may return the audio states (``cross_kv``'s) of up to
        that many waiting windows: they take the first of those places and join the search at its
        next step, each decoded from its own step 0 exactly as if it had been in from the start."""
        shape = self.shape
        windows, beams = shape.windows, shape.beams
        used = windows if windows_used is None else windows_used
        assert len(prompt) - 1 + max_new_tokens <= shape.slots and max_new_tokens >= 1
        assert temperature == 0 or beams == 1, "sampling draws one beam"
        assert 0 <= no_speech_at < len(prompt) - 1, "the start of transcript must come before the prompt's last token"
        self.tick.zero_()
        self.last_step.fill_(max_new_tokens - 1)
        self.max_candidates.fill_(max(1, round(beams * patience)))
        self.temperature.fill_(temperature)
        self.done.fill_(True)  # places without a window: never waited for
        self._start(prompt, list(range(used)), no_speech_at, no_speech_token)
        started = dict.fromkeys(range(used), 0)  # place -> the tick it joined at
        numbers = {place: place for place in range(used)}  # place -> the window's number
        next_number, tick = used, 0
        refill_at = max(1, round(windows * REFILL_SHARE))
        while started:
            oldest = tick - min(started.values())
            slots = self.slot_view(len(prompt) - 1 + oldest)
            graph = self._graphs.get(slots) if temperature == 0 else None
            if graph is not None:
                graph.replay()
            else:
                self.advance(slots, sampling=temperature > 0)
            tick += 1
            if tick % _CHECK_EVERY and oldest + 1 < max_new_tokens:
                continue
            done = self.done.tolist()
            ending = [place for place in started if done[place]]
            for place, best, no_speech in self._read_back(ending, started, tick):
                finished(numbers.pop(place), best, no_speech)
                del started[place]
            free = [place for place in range(windows) if place not in started]
            if admit is None or not free or (len(free) < refill_at and started):
                continue
            states = admit(free)
            if states is not None and len(states):
                joined = free[: len(states)]
                self.cross[joined] = states
                self._start(prompt, joined, no_speech_at, no_speech_token, states)
                for place in joined:
                    started[place], numbers[place] = tick, next_number
                    next_number += 1

    def _start(
        self,
        prompt: list[int],
        places: list[int],
        no_speech_at: int,
        no_speech_token: int,
        states: torch.Tensor | None = None,
    ) -> None:
        """Windows at ``places`` (their audio states in ``self.cross``, and in ``states`` when
        the caller has them at hand) begin: the prompt's pass, then step 0. The other places'
        cache, lineage and state are left as they are."""
        beams, device = self.shape.beams, self.tokens.device
        decoder = self.network.decoder
        everyone = len(places) == self.shape.windows
        index = torch.tensor(places, device=device)
        slots = self.slot_view(len(prompt) - 2)
        own = self._beam_ids[None, :, None].expand(len(places), -1, self.lineage.shape[-1])  # each beam its prompt copy
        if everyone:  # the whole batch: views, written in place
            self.lineage.copy_(own)
            cache, lineage, cross = self.cache[:, :, :, :, :slots], self.lineage[:, :, :slots], self.cross
        else:  # joiners: their rows, copied out and back (the prompt's slots only)
            self.lineage[index] = own
            cache, lineage, cross = (
                self.cache[index, :, :, :, :slots],
                self.lineage[index, :, :slots],
                self.cross[index] if states is None else states,
            )
        head = torch.tensor(prompt[:-1], device=device).expand(len(places) * beams, -1)
        hidden = decoder.step(head, torch.arange(len(prompt) - 1, device=device), cache, lineage, cross)
        if not everyone:
            self.cache[index, :, :, :, :slots] = cache
        no_speech = decoder.logits(hidden[::beams, no_speech_at]).float().softmax(-1)[:, no_speech_token]
        rows = (index[:, None] * beams + self._beam_ids).view(-1)
        self.tokens[rows] = prompt[-1]
        self.scores[rows] = torch.tensor([0.0] + [-np.inf] * (beams - 1), device=device).repeat(len(places))
        self.first_position[index] = len(prompt) - 1
        self.step_index[index] = 0
        self.finished_count[index] = 0
        self.done[index] = False
        self.no_speech[index] = no_speech

    def _read_back(self, places: list[int], started: dict[int, int], tick: int) -> list[tuple[int, Hypothesis, float]]:
        """The best hypothesis of each window at ``places`` (done), from its steps' records."""
        if not places:
            return []
        ring = self.top_tokens.shape[0]
        tokens, parents = self.top_tokens.cpu().numpy(), self.top_parents.cpu().numpy()
        scores, live = self.top_scores.cpu().numpy(), self.live.cpu().numpy()
        finishing, no_speech = self.finishing.cpu().numpy(), self.no_speech.tolist()
        found = []
        for place in places:
            steps = (started[place] + np.arange(tick - started[place])) % ring  # its steps' rows, in order
            best = self._best(tokens[steps, place], parents[steps, place], scores[steps, place], live[steps, place],
                              finishing[steps, place])  # fmt: skip
            found.append((place, best, no_speech[place]))
        return found

    def _best(
        self, tokens: np.ndarray, parents: np.ndarray, scores: np.ndarray, live: np.ndarray, finishing: np.ndarray
    ) -> Hypothesis:
        """One window's best finished hypothesis, followed back through its steps' records."""
        ranked: list[tuple[float, Hypothesis]] = []
        for step, beam in zip(*np.nonzero(finishing), strict=True):
            sequence, totals, candidate = [], [], beam
            for back in range(step, -1, -1):
                sequence.append(int(tokens[back, candidate]))
                totals.append(float(scores[back, candidate]))  # the running sum so far
                if back:
                    candidate = live[back - 1, parents[back, candidate]]
            sequence.reverse()
            totals.reverse()
            ended = sequence[-1] == self.eot
            text = sequence[:-1] if ended else sequence
            own = np.diff(totals, prepend=0.0)[: len(text)].tolist()
            ranked.append((totals[-1] / max(1, len(text)), Hypothesis(text, totals[-1], ended, own)))
        return max(ranked, key=lambda r: r[0])[1]


def record_steps(slots: int) -> int:
    """Rows of the step records' ring for searches of up to ``slots`` slots."""
    return slots + _CHECK_EVERY


def token_mask(vocabulary: int, suppressed: list[int], device: torch.device) -> torch.Tensor:
    """0 for tokens that may be decoded, -inf for the suppressed ones (added to the logits)."""
    mask = torch.zeros(vocabulary, dtype=torch.float32, device=device)
    mask[[i for i in suppressed if 0 <= i < vocabulary]] = -np.inf
    return mask
