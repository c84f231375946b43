"""The torch engine on a CUDA device (skipped without one; run on the lent GPU machine): a CUDA
graph replays exactly what the eager step computes, and the two engines agree in float16."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from app.engine.decoding import Decoding
from app.engine.vad import load_speech_detector
from app.engine.whisper import fallback
from app.engine.whisper.beam_search import BeamSearch, SearchBuffers, SearchShape, token_mask
from app.serving.warmup import sample_speech
from tests.support.scoring import word_error_rate
from tests.support.tiny_whisper import DIMS, EOT, audio_states, tiny_network

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("frames", [None, DIMS.audio_positions // 2], ids=["full-window", "short-window"])
@pytest.mark.parametrize("beams", [1, 5])
@torch.inference_mode()
def test_graph_replay_equals_eager(beams, frames):
    device = torch.device("cuda")
    network = tiny_network(seed=beams).to(device)
    shape = SearchShape(8, beams, 32, frames)  # a short window (a live partial's) reads a view of the buffers
    buffers = SearchBuffers(network, SearchShape(8, beams, 32), torch.float32, device)
    cross = audio_states(network, 8)[:, :, :, :, :frames]
    results = []
    for graphs in (False, True):
        search = _search(network, buffers, shape, graphs)
        search.cross.copy_(cross)
        results.append(
            search.run([10, 2, 5], max_new_tokens=20, patience=1.0, temperature=0.0, no_speech_at=0, no_speech_token=4)
        )
    (eager, eager_ns), (graphed, graphed_ns) = results
    assert [h.tokens for h in graphed] == [h.tokens for h in eager]
    assert [h.logprob for h in graphed] == pytest.approx([h.logprob for h in eager], abs=1e-4)
    assert graphed_ns == pytest.approx(eager_ns, abs=1e-5)


@torch.inference_mode()
def test_graph_replay_equals_eager_as_windows_join():
    """Continuous batching under CUDA graphs: windows that join at other steps than their
    batch-mates (each window at its own position) replay exactly what the eager steps compute."""
    device = torch.device("cuda")
    network = tiny_network(seed=13).to(device)
    network.decoder.embedding[EOT] *= 2.6  # windows end after 1 to 12 tokens
    waiting = audio_states(network, 12, seed=4)
    shape = SearchShape(4, 3, 32)
    buffers = SearchBuffers(network, shape, torch.float32, device)
    results = []
    for graphs in (False, True):
        search = _search(network, buffers, shape, graphs)
        queue = list(range(4, 12))

        def admit(places: list[int], queue: list[int] = queue) -> torch.Tensor:
            taken = queue[: len(places)]
            del queue[: len(taken)]
            return waiting[taken]

        search.cross.copy_(waiting[:4])
        ended: dict[int, list[int]] = {}
        search.search(
            [10, 2, 5],
            max_new_tokens=12,
            patience=1.0,
            temperature=0.0,
            no_speech_at=0,
            no_speech_token=4,
            finished=lambda n, h, _, ended=ended: ended.__setitem__(n, h.tokens),
            admit=admit,
        )
        results.append(ended)
    assert sorted(results[0]) == list(range(12))
    assert results[1] == results[0]


def _search(network, buffers: SearchBuffers, shape: SearchShape, graphs: bool) -> BeamSearch:
    """A search that suppresses token 3 (and end-of-text at first), its graphs captured if ``graphs``."""
    device = buffers.cache.device
    masks = {
        "suppress": token_mask(DIMS.n_vocab, [3], device),
        "suppress_begin": token_mask(DIMS.n_vocab, [EOT], device),
    }
    search = BeamSearch(network, buffers, shape, eot=EOT, **masks)
    if graphs:
        pool = torch.cuda.graph_pool_handle()
        for slots in search.slot_views():
            search.capture_view(pool, slots)
    return search


def test_engines_agree_in_float16(tmp_path: Path):
    from app.engine.whisper.ctranslate2 import CTranslate2Engine
    from app.engine.whisper.sources import resolve_whisper_source
    from app.engine.whisper.stage import Whisper
    from app.engine.whisper.torch_engine import TorchEngine

    source = resolve_whisper_source(os.environ.get("GPU_TEST_WHISPER_MODEL", "bundled-tiny.en"), "cuda", tmp_path)
    common = {
        "device": "cuda",
        "compute_type": "float16",
        "cpu_threads": 0,
        "download_root": str(tmp_path),
        "hf_token": None,
    }
    audio = sample_speech()
    chunks = load_speech_detector("silero", "cpu")(audio)
    decoding = Decoding("en", "transcribe", None, fallback.ONCE, 4)
    texts = {}
    for name, engine in (
        ("ctranslate2", CTranslate2Engine.load(source, **common)),
        ("torch", TorchEngine.load(source, **common)),
    ):
        for beams in (5, 1):
            engine.options = replace(engine.options, beam_size=beams)
            texts[name, beams] = " ".join(s.text for s in Whisper(engine).transcribe(audio, chunks, decoding))
    for beams in (5, 1):
        assert word_error_rate(texts["ctranslate2", beams], texts["torch", beams]) <= 0.01, texts


def test_smaller_buckets_run_padded_until_their_graphs_are_captured(tmp_path: Path):
    """prepare() captures the largest bucket at once and the rest on a thread; a batch that comes
    before its own bucket's graphs decodes padded in a larger one, to the same words."""
    import time

    from app.engine.whisper.sources import resolve_whisper_source
    from app.engine.whisper.stage import Whisper
    from app.engine.whisper.torch_engine import TorchEngine

    source = resolve_whisper_source(os.environ.get("GPU_TEST_WHISPER_MODEL", "bundled-tiny.en"), "cuda", tmp_path)
    common = {"device": "cuda", "compute_type": "float16", "cpu_threads": 0, "download_root": str(tmp_path)}
    audio = sample_speech()
    chunks = load_speech_detector("silero", "cpu")(audio)[:3]
    decoding = Decoding("en", "transcribe", None, fallback.ONCE, 16)
    eager = TorchEngine.load(source, hf_token=None, cuda_graphs=False, **common)
    expected = [s.text for s in Whisper(eager).transcribe(audio, chunks, decoding)]

    engine = TorchEngine.load(source, hf_token=None, **common)
    whisper = Whisper(engine)
    whisper.prepare(16, decoding)
    with engine._lock:  # the capture thread adds to both
        captured = {(s.windows, s.frames) for s in engine._searches}
        queued = {(s.windows, s.frames) for s in engine._queued}
    assert (16, None) in captured and (16, None) not in queued, "the largest full bucket is captured at once"
    every = {(w, f) for w in (1, 2, 4, 8, 16) for f in (None, 500, 1000)}  # full windows, live partials' 10 and 20 s
    assert captured | queued == every, "the others are queued for the capture thread (or done)"
    assert [s.text for s in whisper.transcribe(audio, chunks, decoding)] == expected
    deadline = time.monotonic() + 120
    while engine._queued and time.monotonic() < deadline:
        time.sleep(0.1)
    assert {(s.windows, s.frames) for s in engine._searches} == every
    assert all(search._graphs for search in engine._searches.values()), "every bucket has its graphs"
    assert [s.text for s in whisper.transcribe(audio, chunks, decoding)] == expected
