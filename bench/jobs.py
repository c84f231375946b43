"""What a job costs over a synchronous request, and how long a crash leaves a job waiting.

    python -m bench.jobs [--repeats 3] [--seconds 30]

Starts the real server (bundled model, CPU unless DEVICE says otherwise) and prints:
- a synchronous /transcribe and a job (POST /v1/jobs, then its events until the end) on the
  same length of audio, each on audio it has not seen (a repeat would be a cache hit);
- a cache hit: the same audio and options as a finished job;
- a crash: SIGKILL while a job runs, a restart on the same volume, and the seconds until the
  job runs again (from the restarted process's start, and from its readiness).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.server import post_audio, running_server, write_tiled_sample
from tests.support.waiting import wait_for_job


def _job(http: httpx.Client, audio: Path, **form: str) -> tuple[float, dict]:
    started = time.perf_counter()
    with audio.open("rb") as f:
        reply = http.post("/v1/jobs", files={"file": (audio.name, f, "audio/wav")}, data=form)
    reply.raise_for_status()
    job = reply.json()
    if job["state"] != "succeeded":
        with http.stream("GET", f"/v1/jobs/{job['id']}/events") as events:
            for line in events.iter_lines():
                if line.startswith("data: "):
                    job = json.loads(line[6:])
    return time.perf_counter() - started, job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per request")
    parser.add_argument("--crash-seconds", type=float, default=150.0, help="audio of the job killed mid-way")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    env = {
        "MODEL_CACHE_DIR": os.environ.get("MODEL_CACHE_DIR", str(root / "models")),
        "JOBS_DIR": str(root / "jobs"),
        "TEMP_DIR": str(root),
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        "JOB_CONCURRENCY": "1",
    }
    sync_s, job_s = [], []
    with running_server(env, root / "server.log") as server, server.client() as http:
        print(f"server ready in {server.ready_after_s:.1f} s: {server.health['model']} on {server.health['device']}")
        for n in range(args.repeats):
            # A different stretch of the call each time: no cache hit, same length of speech.
            sync_audio = write_tiled_sample(root / f"sync{n}.wav", args.seconds, offset=1.0 + 2 * n)
            job_audio = write_tiled_sample(root / f"job{n}.wav", args.seconds, offset=2.0 + 2 * n)
            sync_s.append(post_audio(http, sync_audio)[0])
            seconds, job = _job(http, job_audio)
            assert job["state"] == "succeeded", job
            job_s.append(seconds)
        hit_s, hit = _job(http, root / "job0.wav")
        assert hit["cache_hit"], hit
        long_audio = write_tiled_sample(root / "long.wav", args.crash_seconds, offset=0.5)
        with long_audio.open("rb") as f:
            crashed = http.post("/v1/jobs", files={"file": ("long.wav", f)}, data={"word_timestamps": "false"}).json()
        wait_for_job(http, crashed["id"], lambda j: j["progress"].get("stage") == "asr")
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
    with running_server(env, root / "restart.log") as server, server.client() as http:
        ready_at = time.monotonic()
        wait_for_job(http, crashed["id"], lambda j: j["state"] != "queued")
        from_ready = time.monotonic() - ready_at
        from_start = time.monotonic() - server.started_at
        done = wait_for_job(http, crashed["id"], lambda j: j["state"] in ("succeeded", "failed"))
    sync_median, job_median = statistics.median(sync_s), statistics.median(job_s)
    print(f"\n{args.seconds:g} s of speech, median of {args.repeats}")
    print(f"  synchronous /transcribe      {sync_median:7.2f} s   ({', '.join(f'{s:.2f}' for s in sync_s)})")
    print(f"  job, submit → end event      {job_median:7.2f} s   ({', '.join(f'{s:.2f}' for s in job_s)})")
    print(f"  job overhead                 {job_median - sync_median:+7.2f} s   ({job_median / sync_median:.2f}×)")
    print(f"  cache hit (same audio, opts) {hit_s:7.3f} s")
    print(f"\ncrash: SIGKILL during ASR of a {args.crash_seconds:g} s job, restart on the same volume")
    print(f"  restart → ready              {from_start - from_ready:7.1f} s")
    print(f"  ready → job running again    {from_ready:7.2f} s")
    print(f"  job after the restart        {done['state']}, attempts {done['attempts']}")


if __name__ == "__main__":
    main()
