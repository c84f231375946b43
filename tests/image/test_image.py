"""The image, built and run as users do: run.sh on the host folders a non-root user made, the
bundled model on the CPU (no GPU here), real speech over HTTP, SIGTERM's drain, prewarm then a
restart, and nothing sent outward with OFFLINE=true."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.image.conftest import ARCH, SLOWDOWN
from tests.support.containers import Deployment
from tests.support.scoring import read_stm_text, word_error_rate
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(int(3600 * SLOWDOWN))

OFFLINE_CPU = ("-e", "OFFLINE=true", "-e", "DEVICE=cpu")


class Capture:
    """tcpdump on the host, over the engine's container network, for everything but the service's port."""

    def __init__(self, deployment: Deployment, out: Path) -> None:
        self.out = out
        network = "podman" if deployment.engine == "podman" else "bridge"
        fmt = (
            "{{range .Subnets}}{{.Subnet}}{{end}}"
            if deployment.engine == "podman"
            else "{{(index .IPAM.Config 0).Subnet}}"
        )
        self.subnet = deployment.engine_run("network", "inspect", network, "-f", fmt).stdout.strip()
        assert self.subnet, f"no subnet for the {network} network"
        # Every TCP or UDP packet a container sends, but the service's answers on its own port (the
        # host's ARP and IGMP on the bridge are not the container's). -Z root: tcpdump would drop
        # to its own user, who cannot write pytest's folders.
        rule = f"(tcp or udp) and src net {self.subnet} and not tcp port 8003"
        self.process = subprocess.Popen(
            ["tcpdump", "-Z", "root", "--immediate-mode", "-i", "any", "-n", "-U", "-w", str(out), rule],
            stderr=subprocess.DEVNULL,
        )
        # The file's header is written once the capture is open: from then on every packet is kept.
        wait_for(lambda: out.exists() and out.stat().st_size >= 24, 30, "tcpdump capturing")

    def packets(self) -> list[str]:
        """Every packet caught so far (the capture goes on)."""
        read = subprocess.run(["tcpdump", "-n", "-r", str(self.out)], capture_output=True, text=True)
        return read.stdout.splitlines()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def served(deploy_module, user, module_tmp) -> Iterator[tuple[Deployment, Capture]]:
    """One container started by run.sh, OFFLINE, on folders the host user made, watched by
    tcpdump from before it starts."""
    deployment = deploy_module(owner=user)
    capture = Capture(deployment, module_tmp / "outward.pcap")
    try:
        started = deployment.run_sh(*OFFLINE_CPU)
        assert started.returncode == 0, started.stderr
        assert "is up on" in started.stdout
        deployment.wait_ready()
        yield deployment, capture
    finally:
        capture.stop()


def test_the_service_runs_as_the_owner_of_the_host_folders(served, user):
    deployment, _ = served
    status = deployment.exec("cat", "/proc/1/status")
    assert f"Uid:\t{user.pw_uid}\t" in status
    assert "python -m app serve" in deployment.exec("cat", "/proc/1/cmdline").replace("\0", " ")
    written = [p for p in deployment.models.rglob("*")]
    assert written, "the service wrote nothing to its model cache"
    assert {p.stat().st_uid for p in written} == {user.pw_uid}, "every cached file stays the user's"


def test_health_names_the_engine_the_device_and_the_accelerator(served):
    health = served[0].health().json()
    print(json.dumps({k: health[k] for k in ("status", "engine", "device", "model", "accelerator")}))
    assert health["engine"] == "ctranslate2" and health["device"] == "cpu" and health["model"] == "bundled-base"
    assert health["accelerator"]["gpu_present"] is False
    assert health["accelerator"]["problems"] == []
    assert health["stages"]["asr"]["loaded"] and health["stages"]["diarization"]["loaded"]


def test_transcribes_the_sample_with_two_speakers(served, sample_wav, sample_stm):
    deployment, _ = served
    reply = httpx.post(
        f"{deployment.url}/transcribe",
        files={"file": ("sample.wav", sample_wav.read_bytes(), "audio/wav")},
        timeout=600 * SLOWDOWN,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    wer = word_error_rate(read_stm_text(sample_stm), body["text"])
    print(f"image {ARCH}: WER {wer:.3f} on the sample call, {body['num_speakers']} speakers, {body['timings']}")
    assert wer < 0.25
    assert body["num_speakers"] >= 2 and body["language"] == "en"


def test_the_healthcheck_passes(served):
    deployment, _ = served
    if deployment.engine == "podman":  # Podman's healthcheck timers need systemd: run it by hand
        assert deployment.engine_run("healthcheck", "run", deployment.name, check=False).returncode == 0
    else:
        inspected = deployment.engine_run("inspect", "-f", "{{.State.Health.Status}}", deployment.name).stdout
        assert inspected.strip() in ("healthy", "starting")


def test_nothing_is_written_outside_the_volumes(served):
    """The container's own filesystem is left as built, but for /tmp's transient files and the
    passwd entry Podman adds for a --user without one."""
    deployment, _ = served
    changes = deployment.engine_run("diff", deployment.name).stdout.split("\n")
    unexpected = [
        line
        for line in changes
        if line.strip() and line.split()[-1] not in ("/etc", "/etc/passwd", "/etc/group", "/tmp")
    ]
    assert not unexpected, unexpected


def test_offline_sends_nothing_outward(served):
    """From before the container started through a transcription: no packet left its network
    but the service's own port (no DNS lookup, no connection, no telemetry)."""
    deployment, capture = served
    packets = capture.packets()
    assert packets == [], packets[:20]
    # The watch itself sees what a container sends: a connection tried from inside is caught.
    attempt = "import socket\ntry: socket.create_connection(('192.0.2.1', 9), 1)\nexcept OSError: pass"
    deployment.exec("python", "-c", attempt)
    wait_for(lambda: any("> 192.0.2.1.9:" in line for line in capture.packets()), 30, "the control packet seen")


def test_sigterm_drains_the_work_in_flight_and_exits_0(served, sample_wav):
    deployment, _ = served
    replies: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: replies.append(
            httpx.post(
                f"{deployment.url}/transcribe",
                files={"file": ("sample.wav", sample_wav.read_bytes(), "audio/wav")},
                timeout=600 * SLOWDOWN,
            )
        )
    )
    request.start()
    wait_for(lambda: deployment.health().json()["queue"]["in_flight"] == 1, 60 * SLOWDOWN, "the request admitted")
    # run.sh gave the engine a stop timeout of the grace + 10 s.
    deployment.engine_run("stop", deployment.name, timeout_s=deployment.grace_s + 30)
    request.join(timeout=60 * SLOWDOWN)
    assert replies and replies[0].status_code == 200, replies[0].text if replies else "no reply"
    assert deployment.engine_run("inspect", "-f", "{{.State.ExitCode}}", deployment.name).stdout.strip() == "0"
    assert "Drained in" in deployment.logs()


def test_prewarm_then_start_reuses_both_caches(deploy, user):
    deployment = deploy(owner=user)
    prewarm = deployment.run_sh("prewarm", *OFFLINE_CPU, timeout_s=600)
    assert prewarm.returncode == 0, prewarm.stderr[-3000:]
    summary = json.loads(prewarm.stdout.strip().splitlines()[-1])
    assert summary["phase"] == "ready" and summary["warmup"]
    cached = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in deployment.models.rglob("*") if p.is_file()}
    assert any(p.name == "model.bin" for p in cached), "prewarm assembled the bundled model into the cache"
    started = deployment.run_sh(*OFFLINE_CPU)
    assert started.returncode == 0, started.stderr
    deployment.wait_ready()
    env = deployment.exec("env")
    assert "CUDA_CACHE_PATH=/cuda-cache" in env and "CUDA_CACHE_DISABLE=0" in env
    reused = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cached if p.exists()}
    models = {p: v for p, v in cached.items() if p.name in ("model.bin", "config.json", "tokenizer.json")}
    assert models and all(reused.get(p) == v for p, v in models.items()), "the restart rewrote the cached model"


def test_as_root_the_folders_go_to_the_images_user(deploy):
    """A root caller's new folders belong to the image's user (10001): the service never runs as root."""
    deployment = deploy()
    started = deployment.run_sh(*OFFLINE_CPU, "-e", "ENABLE_DIARIZATION=false")
    assert started.returncode == 0, started.stderr
    assert deployment.models.stat().st_uid == 10001 and deployment.cuda_cache.stat().st_uid == 10001
    assert "Uid:\t10001\t" in deployment.exec("cat", "/proc/1/status")


def test_a_refused_setting_stops_instead_of_restarting_forever(deploy, user):
    deployment = deploy(owner=user)
    started = deployment.run_sh("-e", "TEMP_DIR=/nowhere", *OFFLINE_CPU, timeout_s=120)
    assert started.returncode == 1
    assert "did not start" in started.stderr and "Refusing to start: TEMP_DIR" in started.stderr
    assert not deployment.exists(), "run.sh removes a container that cannot start, so it does not restart forever"


def test_the_image_holds_a_gpu_stack_and_the_sentence_data(deployment_image_python):
    """What only the GPU can use, checked without one: torch is the CUDA build, every package of the
    GPU path imports (through app, which silences torchcodec's warning: the service never decodes
    with torchcodec, whose wheels need FFmpeg's and, on aarch64, NPP's libraries), and NLTK's
    trained Punkt data is there (no download at run time)."""
    facts = deployment_image_python(
        "import app, glob, json, os, torch, ctranslate2, faster_whisper, whisperx, pyannote.audio\n"
        "from nltk.tokenize.punkt import PunktTokenizer\n"
        "from app.runtime.accelerator import image_gpu_libraries_built\n"
        "lib = os.path.join(os.path.dirname(torch.__file__), 'lib')\n"
        "print(json.dumps({'cuda': torch.version.cuda, 'libtorch_cuda': os.path.exists(f'{lib}/libtorch_cuda.so'),\n"
        "  'arch': os.uname().machine, 'problem': image_gpu_libraries_built(compiled_ctranslate2=False),\n"
        "  'split': PunktTokenizer('english').tokenize('Dr. Smith came. He left.')}))\n"
    )
    print(facts)
    assert facts["cuda"] and facts["cuda"].startswith("13.") and facts["libtorch_cuda"]
    assert facts["arch"] == {"amd64": "x86_64", "arm64": "aarch64"}[ARCH]
    assert facts["problem"] is None
    assert facts["split"] == ["Dr. Smith came.", "He left."], "the trained English model knows 'Dr.'"


@pytest.fixture
def deployment_image_python(engine_env, image):
    from tests.support.containers import engine_name

    def run(code: str) -> dict:
        result = subprocess.run(
            [engine_name(), "run", "--rm", "--entrypoint", "python", image, "-c", code],
            env=engine_env,
            capture_output=True,
            text=True,
            timeout=600 * SLOWDOWN,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    return run


def test_the_build_leaves_none_of_its_images_behind(engine_env, image):
    """A rebuild untags the image it replaces (about 7 GB) and a failed step keeps its working
    container: build_image.sh removes both, so rebuilding does not fill the disk."""
    from tests.support.containers import engine_name

    label = "label=org.opencontainers.image.title=transcription-service"
    listed = subprocess.run(
        [engine_name(), "images", "-q", "--filter", "dangling=true", "--filter", label],
        env=engine_env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert listed.stdout.split() == []
