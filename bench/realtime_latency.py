"""Live transcription latency: a recording played into /v1/realtime at real-time speed, by
many sessions at once, beside file traffic.

The recording is the bundled two-speaker call cut into its reference turns (the STM), with
``--pause`` seconds of silence after each, so server VAD has turns to end. Each session plays
it at 1× speed (sessions start up to ``--stagger`` s apart); ``--file-clients`` clients post
the call to /v1/audio/transcriptions in a loop meanwhile. Per turn it measures:

- **completed after the turn's end was detected**: the ``completed`` event's arrival minus
  the ``speech_stopped`` event's (the server's decode, alignment and queueing);
- **completed after speech ended**: minus the moment the last spoken sample was sent (adds
  the ``silence_duration_ms`` the VAD waits before it ends a turn);
- **first delta after speech began**: the first partial words' arrival minus the moment the
  turn's first spoken sample was sent.

and the word error rate of each session's live transcript against the file transcript of
the same recording, and of the partials: the words shown while a turn was still open (the
deltas before its ``committed``) against the first as many words of the turn's final text,
with the share of the final's words they covered. Prints tables and a last JSON line.

    python -m bench.realtime_latency --smoke                      # CPU, bundled model, 2 sessions
    python -m bench.realtime_latency --smoke --model bundled-base --partial-model bundled-tiny.en
    python -m bench.realtime_latency --model /models/large-v3 --sessions 16 --file-clients 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.serving.warmup import sample_speech_path
from tests.support.live_player import COMPLETED, DELTA, LiveRun, pcm16, play
from tests.support.scoring import read_stm_turns, word_error_rate
from tests.support.server import running_server
from tests.support.waiting import wait_for

_PREFIX_MS = 300  # the session's prefix_padding_ms: audio_start_ms is this far before speech


def turn_recording(out: Path, pause_s: float) -> Path:
    """The sample call's reference turns, each followed by ``pause_s`` of silence (16 kHz WAV)."""
    from app.engine.audio import read_pcm16_wav

    sample = sample_speech_path().parent
    audio = read_pcm16_wav(sample / "sample.wav")
    pieces = []
    for start, end, _ in read_stm_turns(sample / "sample.stm"):
        pieces += [audio[int(start * 16000) : int(end * 16000)], np.zeros(int(pause_s * 16000), dtype=np.float32)]
    joined = (np.clip(np.concatenate(pieces), -1, 1) * 32767).astype("<i2")
    with wave.open(str(out), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(16000)
        file.writeframes(joined.tobytes())
    return out


def reference_text() -> str:
    from tests.support.scoring import read_stm_text

    return read_stm_text(sample_speech_path().parent / "sample.stm")


def turn_latencies(run: LiveRun) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"completed_after_stop": [], "completed_after_speech": [], "first_delta": []}
    for stopped in run.of_type("input_audio_buffer.speech_stopped"):
        item = stopped["item_id"]
        done, decided = run.arrival(COMPLETED, item), run.arrival("input_audio_buffer.speech_stopped", item)
        if done is None or decided is None:
            continue
        out["completed_after_stop"].append(done - decided)
        out["completed_after_speech"].append(done - run.sent_at(stopped["audio_end_ms"]))
    for started in run.of_type("input_audio_buffer.speech_started"):
        first = run.arrival(DELTA, started["item_id"])
        if first is not None and first < (run.arrival(COMPLETED, started["item_id"]) or float("inf")):
            out["first_delta"].append(first - run.sent_at(started["audio_start_ms"] + _PREFIX_MS))
    return out


def partial_accuracy(runs: list[LiveRun]) -> tuple[float, float]:
    """(WER, coverage) of the words shown before each turn was committed: against the first as
    many words of its final text, and as a share of the final's words (all turns pooled)."""
    shown_all, said_all, covered, total = [], [], 0, 0
    for run in runs:
        for final in run.of_type(COMPLETED):
            item = final["item_id"]
            committed = run.arrival("input_audio_buffer.committed", item) or float("inf")
            shown = "".join(
                e["delta"] for t, e in run.events if e["type"] == DELTA and e.get("item_id") == item and t < committed
            ).split()
            said = final["transcript"].split()
            shown_all += shown
            said_all += said[: len(shown)]
            covered, total = covered + min(len(shown), len(said)), total + len(said)
    if not shown_all:
        return float("nan"), 0.0
    return word_error_rate(" ".join(said_all), " ".join(shown_all)), covered / max(total, 1)


async def sessions(url: str, pcm: bytes, count: int, stagger_s: float, session: dict[str, Any]) -> list[LiveRun]:
    async def one(index: int) -> LiveRun:
        await asyncio.sleep(stagger_s * index / max(1, count - 1))
        return await play(url, pcm, session=session, speed=1.0, tail_s=2.0, settle_s=60.0)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def file_traffic(
    base: str, audio: Path, clients: int, stop: threading.Event, done: list[float], one_pass: bool = False
) -> list[threading.Thread]:
    form: dict[str, Any] = {"model": "whisper-1", **({"temperature[]": "0"} if one_pass else {})}

    def loop() -> None:
        with httpx.Client(base_url=base, timeout=600) as client:
            while not stop.is_set():
                started = time.perf_counter()
                with audio.open("rb") as f:
                    reply = client.post("/v1/audio/transcriptions", files={"file": f}, data=form)
                if reply.status_code == 200:
                    done.append(time.perf_counter() - started)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one with the options below)")
    parser.add_argument("--model", help="WHISPER_MODEL (default: bundled-base; --smoke: bundled-tiny.en)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--compute-type", default="auto")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="bound decoding (random weights never end)")
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--file-clients", type=int, default=0)
    parser.add_argument("--stagger", type=float, default=2.0)
    parser.add_argument("--pause", type=float, default=1.0, help="silence after each turn of the recording, s")
    parser.add_argument("--partial-interval-ms", type=int, default=None, help="REALTIME_PARTIAL_INTERVAL_MS")
    parser.add_argument("--language", default="en")
    parser.add_argument("--partial-model", help="REALTIME_PARTIAL_MODEL (added to WHISPER_MODELS)")
    parser.add_argument(
        "--one-pass", action="store_true", help="temperature [0] for turns and files: no retries (random weights)"
    )
    parser.add_argument("--smoke", action="store_true", help="CPU, bundled tiny.en, 2 sessions")
    args = parser.parse_args()
    if args.smoke:
        args.device, args.sessions, args.file_clients = "cpu", 2, 1
    args.model = args.model or ("bundled-tiny.en" if args.smoke else "bundled-base")
    work = Path(tempfile.mkdtemp(prefix="realtime-bench-"))
    recording = turn_recording(work / "turns.wav", args.pause)
    pcm = pcm16(recording)
    seconds = len(pcm) / 2 / 24000
    env = {
        "WHISPER_MODEL": args.model,
        "DEVICE": args.device,
        "ENGINE": args.engine,
        "COMPUTE_TYPE": args.compute_type,
        "HF_HUB_OFFLINE": "1",
        "ENABLE_DIARIZATION": "false",
        "MAX_REALTIME_SESSIONS": str(max(16, args.sessions)),
        "MODEL_CACHE_DIR": str(work / "models"),
    }
    if args.max_new_tokens:
        env["MAX_NEW_TOKENS"] = str(args.max_new_tokens)
    if args.partial_interval_ms:
        env["REALTIME_PARTIAL_INTERVAL_MS"] = str(args.partial_interval_ms)
    if args.partial_model:
        env["WHISPER_MODELS"] = env["REALTIME_PARTIAL_MODEL"] = args.partial_model
    if args.url:
        report(args, args.url, recording, pcm, seconds)
        return
    with running_server(env, work / "server.log", timeout_s=900, every_stage=True) as server:
        if args.partial_model:  # it loads after ready
            wait_for(lambda: _partial_model(server.url) is not None, 600, "REALTIME_PARTIAL_MODEL loaded")
        report(args, server.url, recording, pcm, seconds)


def _partial_model(base: str) -> str | None:
    return httpx.get(f"{base}/health", timeout=10).json()["queue"]["realtime"].get("partial_model")


def report(args: argparse.Namespace, base: str, recording: Path, pcm: bytes, seconds: float) -> None:
    with httpx.Client(base_url=base, timeout=600) as client, recording.open("rb") as f:
        data = {"model": "whisper-1", "language": args.language}
        file_text = client.post("/v1/audio/transcriptions", files={"file": f}, data=data).json()["text"]
        health = client.get("/health").json()
    stop, file_times = threading.Event(), []
    traffic = file_traffic(base, recording, args.file_clients, stop, file_times, args.one_pass)
    transcription: dict[str, Any] = {"language": args.language}
    if args.one_pass:
        transcription["temperature"] = [0]
    session = {"type": "transcription", "audio": {"input": {"transcription": transcription}}}
    url = base.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    partial_model = health["queue"]["realtime"].get("partial_model")
    started = time.perf_counter()
    runs = asyncio.run(sessions(url, pcm, args.sessions, args.stagger, session))
    wall = time.perf_counter() - started
    stop.set()
    for thread in traffic:
        thread.join(timeout=600)
    merged: dict[str, list[float]] = {}
    for run in runs:
        for name, values in turn_latencies(run).items():
            merged.setdefault(name, []).extend(values)
    reference = reference_text()
    wers = [word_error_rate(file_text, run.transcript) for run in runs]
    wers_reference = [word_error_rate(reference, run.transcript) for run in runs]
    turns = [len(run.of_type(COMPLETED)) for run in runs]
    partial_wer, partial_coverage = partial_accuracy(runs)
    print(
        f"# Live latency: {args.sessions} sessions × {seconds:.0f} s at 1× speed, {args.file_clients} file clients; "
        f"{health.get('model')} on {health.get('device')} ({health.get('gpu') or 'CPU'}), "
        f"engine {health.get('engine')}; partials by {partial_model or 'the same model'}"
    )
    print("| measure | turns | p50 s | p95 s | max s |\n|---|---|---|---|---|")
    for name, values in merged.items():
        worst = max(values, default=float("nan"))
        print(f"| {name} | {len(values)} | {_p(values, 50):.3f} | {_p(values, 95):.3f} | {worst:.3f} |")
    print(f"\nturns completed per session: {statistics.mean(turns):.1f} (min {min(turns)}); wall {wall:.1f} s")
    print(
        f"WER of the live transcript: vs the file transcript of the same recording {statistics.mean(wers):.3f} "
        f"(max {max(wers):.3f}); vs the reference {statistics.mean(wers_reference):.3f}; "
        f"the file transcript vs the reference {word_error_rate(reference, file_text):.3f}"
    )
    print(
        f"Partials (words shown before their turn was committed): WER {partial_wer:.3f} against the turn's "
        f"final text, covering {partial_coverage:.0%} of its words"
    )
    if file_times:
        mean = statistics.mean(file_times)
        print(f"file requests meanwhile: {len(file_times)}, mean {mean:.2f} s for {seconds:.0f} s of audio")
    summary = {
        "sessions": args.sessions,
        "file_clients": args.file_clients,
        "device": health.get("device"),
        "gpu": health.get("gpu"),
        "model": health.get("model"),
        "engine": health.get("engine"),
        "partial_model": partial_model,
        **{f"{name}_p50": round(_p(v, 50), 3) for name, v in merged.items()},
        **{f"{name}_p95": round(_p(v, 95), 3) for name, v in merged.items()},
        "wer_vs_file_mean": round(statistics.mean(wers), 4),
        "wer_vs_reference_mean": round(statistics.mean(wers_reference), 4),
        "file_wer_vs_reference": round(word_error_rate(reference, file_text), 4),
        "partial_wer_vs_final": round(partial_wer, 4),
        "partial_coverage": round(partial_coverage, 4),
        "file_requests": len(file_times),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
