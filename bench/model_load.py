"""Loading a second model while the first serves: what the request that names it waits, and
what the default model's requests feel meanwhile.

Against a running server with ``WHISPER_MODELS`` naming ``--model`` (not loaded yet):
``--clients`` clients post ``--file`` to the default model in a loop; after ``--settle`` s one
request names ``--model`` (it loads, warms and transcribes), then another (already loaded).
Prints the default's request latency before, during and after the load, the two requests'
times, the model's state and memory from /v1/models, and — with ``--wait-unload`` — how long
until it is unloaded as idle and the GPU memory in use before and after. Last line: JSON.

    python -m bench.model_load --url http://127.0.0.1:8003 --model turbo --clients 4 --wait-unload
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from app.serving.warmup import sample_speech_path


def _post(url: str, audio: bytes, model: str, timeout: float = 600.0) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    reply = httpx.post(
        f"{url}/v1/audio/transcriptions",
        data={"model": model, "response_format": "verbose_json"},
        files={"file": ("audio.wav", audio, "audio/wav")},
        timeout=timeout,
    )
    reply.raise_for_status()
    return time.perf_counter() - started, reply.json()


def _card(url: str, model: str) -> dict[str, Any]:
    return httpx.get(f"{url}/v1/models/{model}", timeout=10).json()


def _gpu_used_mb(url: str) -> dict[str, float] | None:
    """The GPU's memory in use (all of it, and torch's live tensors) as /health samples it."""
    memory = httpx.get(f"{url}/health", timeout=10).json().get("gpu_memory")
    return {"used": memory["used_mb"], "torch_allocated": memory["torch_allocated_mb"]} if memory else None


def _p50(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8003")
    parser.add_argument("--model", required=True, help="a WHISPER_MODELS id, not loaded yet")
    parser.add_argument("--file", type=Path, default=None, help="audio to post (default: the bundled call)")
    parser.add_argument("--clients", type=int, default=4, help="clients on the default model meanwhile")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds of default traffic before the load")
    parser.add_argument("--after", type=float, default=10.0, help="seconds of default traffic after it")
    parser.add_argument("--wait-unload", action="store_true", help="then wait for the idle unload (MODEL_IDLE_S)")
    args = parser.parse_args()
    audio = (args.file or sample_speech_path()).read_bytes()
    url = args.url.rstrip("/")
    before_card = _card(url, args.model)
    assert before_card["state"] == "unloaded", f"{args.model} is {before_card['state']}: restart the server first"

    latencies: list[tuple[float, float]] = []  # (finished at, seconds) of the default model's requests
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            seconds, _ = _post(url, audio, "whisper-1")
            latencies.append((time.perf_counter(), seconds))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    time.sleep(args.settle)
    gpu_before = _gpu_used_mb(url)
    load_started = time.perf_counter()
    first_s, first = _post(url, audio, args.model)
    load_ended = time.perf_counter()
    second_s, second = _post(url, audio, args.model)
    time.sleep(args.after)
    stop.set()
    for thread in threads:
        thread.join(600)
    loaded_card = _card(url, args.model)
    gpu_loaded = _gpu_used_mb(url)

    phases = {
        "before": [s for t, s in latencies if t < load_started],
        "during": [s for t, s in latencies if t > load_started and t - s < load_ended],  # overlapping the load
        "after": [s for t, s in latencies if t - s > load_ended],
    }
    result: dict[str, Any] = {
        "model": args.model,
        "clients": args.clients,
        "first_request_s": round(first_s, 2),
        "second_request_s": round(second_s, 2),
        "model_memory_mb": loaded_card.get("memory_mb"),
        "gpu_used_mb_before_load": gpu_before,
        "gpu_used_mb_loaded": gpu_loaded,
        "default_p50_s": {phase: _p50(values) for phase, values in phases.items()},
        "default_requests": {phase: len(values) for phase, values in phases.items()},
        "texts_differ": first["text"] != second["text"],
    }
    print(f"{args.model}: first request (load + warm + transcribe) {first_s:.2f} s, second {second_s:.2f} s")
    print(f"memory at load: {loaded_card.get('memory_mb')} MB; GPU in use {gpu_before} → {gpu_loaded} MB")
    for phase, values in phases.items():
        print(f"default model p50 {phase:>6}: {_p50(values)} s over {len(values)} requests")
    if args.wait_unload:
        started = time.perf_counter()
        while _card(url, args.model)["state"] != "unloaded" and time.perf_counter() - started < 900:
            time.sleep(0.5)
        unloaded_s = round(time.perf_counter() - started, 1)
        time.sleep(3)  # /health's GPU memory is sampled every second
        gpu_unloaded = _gpu_used_mb(url)
        result |= {"unloaded_s_after_traffic": unloaded_s, "gpu_used_mb_unloaded": gpu_unloaded}
        print(f"unloaded (idle) {unloaded_s} s after the traffic ended; GPU in use {gpu_unloaded} MB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
