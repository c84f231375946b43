import pytest

from app.serving.status import Phase
from app.serving.warmup import WarmupReport


@pytest.mark.parametrize(("phase", "status"), [(Phase.LOADING, "loading"), (Phase.WARMING, "warming")])
def test_503_until_ready(make_client, ready_state, phase, status):
    state = ready_state()
    state.phase = phase
    reply = make_client(state).get("/health")
    assert reply.status_code == 503 and reply.headers["retry-after"]
    assert reply.json()["status"] == status


def test_healthy_when_every_enabled_stage_is_loaded(make_client, ready_state):
    state = ready_state(enable_alignment=False)
    state.warmup = WarmupReport(total_s=1.5, asr_s=1.0, alignment_s=0.2, diarization_s=0.3, audio_s=30.0)
    reply = make_client(state).get("/health")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "healthy"
    for field in ("service", "device", "diarization_device", "model", "cuda_available", "gpu", "compute_capability"):
        assert field in body
    assert body["model"] == "fake-whisper"
    assert body["warmup"]["total_s"] == 1.5
    assert set(body["stages"]) == {"asr", "alignment", "diarization"}
    assert "ENABLE_ALIGNMENT=false" in body["stages"]["alignment"]["detail"]


def test_degraded_says_why(make_client, ready_state):
    state = ready_state(enable_alignment=False)
    state.stages["diarization"].loaded = False
    state.stages["diarization"].detail = "no HF_TOKEN and no cached copy of pyannote/x"
    reply = make_client(state).get("/health")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "degraded"
    assert body["degraded"] == ["diarization"]
    assert "HF_TOKEN" in body["stages"]["diarization"]["detail"]


def test_failed_start_is_503_with_the_reason(make_client, ready_state):
    state = ready_state()
    state.phase = Phase.FAILED
    state.failure = "OSError: model.bin not found"
    client = make_client(state)
    client.app.dependency_overrides.clear()  # the real pipeline dependency, which refuses while failed
    reply = client.get("/health")
    assert reply.status_code == 503 and reply.headers["retry-after"]
    assert reply.json()["status"] == "failed"
    assert "model.bin" in reply.json()["failure"]
    refused = client.post("/transcribe", files={"file": ("a.wav", b"RIFF")})
    assert refused.status_code == 503 and refused.headers["retry-after"], "every 503 says when to come back"


def test_token_never_appears(make_client, ready_state):
    state = ready_state(HF_TOKEN="hf_supersecret")
    assert state.settings.hf_token is not None
    client = make_client(state)
    assert "hf_supersecret" not in client.get("/health").text
    assert "hf_supersecret" not in repr(state.settings)


def test_liveness_is_always_200(make_client, ready_state):
    state = ready_state()
    state.phase = Phase.LOADING
    assert make_client(state).get("/health/live").json() == {"status": "alive"}


def test_gpu_capability_spoof_and_jit_cache_are_shown(make_client, ready_state):
    from app.runtime.device import GpuInfo, JitCacheInfo

    state = ready_state()
    state.gpu = GpuInfo(True, "NVIDIA GB10", "SM_90", "SM_121", True, "sm_121 is newer than sm_120")
    state.jit_cache = JitCacheInfo("/cuda-cache", 14_000_000, 11, {"CUDA_CACHE_PATH": "/cuda-cache"})
    body = make_client(state).get("/health").json()
    assert body["gpu"] == "NVIDIA GB10"
    assert body["compute_capability"] == "SM_90"
    assert body["capability"] == {
        "native": "SM_121",
        "reported": "SM_90",
        "spoofed": True,
        "reason": "sm_121 is newer than sm_120",
    }
    assert body["jit_cache"]["files"] == 11
    assert body["jit_cache"]["environment"]["CUDA_CACHE_PATH"] == "/cuda-cache"


def test_a_gpu_that_cannot_be_used_is_degraded_with_the_fix(make_client, ready_state):
    from app.runtime.accelerator import AcceleratorCheck, GpuEvidence, PackageCuda, diagnose

    evidence = GpuEvidence(("/dev/nvidia0",), "libcuda.so.1", None)
    packages = (PackageCuda("ctranslate2", "4.8.5", False, 0), PackageCuda("torch", "2.11.0+cu130", True, 1))
    state = ready_state(enable_alignment=False)
    state.accelerator = AcceleratorCheck(evidence, packages, tuple(diagnose(evidence, list(packages), "aarch64")))
    reply = make_client(state).get("/health")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "degraded"
    assert body["degraded"] == ["accelerator"]
    accelerator = body["accelerator"]
    assert accelerator["gpu_present"] is True
    assert accelerator["evidence"] == ["/dev/nvidia0", "libcuda.so.1"]
    [problem] = accelerator["problems"]
    assert problem["reason"] == "ctranslate2 4.8.5 was built without CUDA: the aarch64 wheels on PyPI are CPU-only"
    assert "ENGINE=auto or torch" in problem["fix"] and "--target service-ctranslate2-cuda" in problem["fix"]
    assert [lib["name"] for lib in accelerator["libraries"]] == ["ctranslate2", "torch"]


def test_a_stage_loading_after_ready_is_listed_and_require_waits_for_it(make_client, ready_state):
    state = ready_state(enable_alignment=False)
    diarization = state.stages["diarization"]
    diarization.loaded, diarization.loading, diarization.model = False, True, "offline"
    client = make_client(state)

    reply = client.get("/health")
    assert reply.status_code == 200, "ready to transcribe while the diarizer loads"
    body = reply.json()
    assert body["status"] == "healthy" and body["degraded"] == []  # loading is not missing
    assert body["loading"] == ["diarization"] and body["stages"]["diarization"]["loading"] is True
    for require in ("all", "diarization", "asr,diarization", "alignment,all"):
        held = client.get("/health", params={"require": require})
        assert held.status_code == 503 and held.headers["retry-after"], require
        assert held.json()["status"] == "loading" and held.json()["loading"] == ["diarization"]
    assert client.get("/health", params={"require": "asr"}).status_code == 200
    for unknown in ("speakers", "ALL;drop", "diarization,", ""):
        assert client.get("/health", params={"require": unknown}).status_code == 422, unknown

    client.app.state.gate.drain(grace_s=30)  # shutting down says so, whatever is still loading
    draining = client.get("/health", params={"require": "all"})
    assert draining.status_code == 503 and draining.json()["status"] == "draining"
    client.app.state.gate.draining = False

    diarization.loading, diarization.loaded = False, True
    assert client.get("/health", params={"require": "all"}).status_code == 200
    diarization.loaded, diarization.detail = False, "the diarizer failed to load: OSError: gone"
    failed = client.get("/health", params={"require": "all"})
    assert failed.status_code == 200 and failed.json()["degraded"] == ["diarization"], "it will never load: degraded"


def test_the_startup_timeline_is_on_one_axis(make_client, ready_state):
    from app.runtime.timing import StepTimer

    state = ready_state()
    timer = StepTimer(state.startup_timings, state.startup_spans)
    timer.mark("before_load")
    with timer("import torch"):
        pass
    state.startup_timings["ready"] = timer.at()
    body = make_client(state).get("/health").json()
    steps = [span["step"] for span in body["startup_timeline"]]
    assert steps == ["before_load", "import torch"]
    first, second = body["startup_timeline"]
    assert first["start"] == 0.0 and first["end"] <= second["start"] <= second["end"] <= body["startup_s"]["ready"]
    assert second["thread"] and set(body["startup_s"]) >= {"before_load", "import torch", "ready"}
