"""Dockerfile.gpu and run.sh, checked without a Docker engine (none exists on CI)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile.gpu").read_text().replace("\\\n", " ")
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), " ".join(rest.split())))
    return rows


def _all(keyword: str) -> list[str]:
    return [rest for kw, rest in _instructions() if kw == keyword]


def _env() -> dict[str, str]:
    pairs = {}
    for rest in _all("ENV"):
        pairs.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return pairs


def _args() -> dict[str, str]:
    pairs = (arg.split("=", 1) for arg in _all("ARG") if "=" in arg)
    return {name: value.strip('"') for name, value in pairs}


def test_ctranslate2_is_pypis_wheel_unless_its_target_is_asked_for():
    """The GPU engine is torch: the default target (the last stage) installs PyPI's CTranslate2 (the
    CPU engine) and builds nothing; --target service-ctranslate2-cuda compiles it for CUDA 13. Stages
    are chosen by target, never by a build argument: buildah decides which stages are unused from
    the arguments passed, not from ARG defaults, and skipped the one `FROM stage-${ARG}` named."""
    stages = _all("FROM")
    assert stages == [
        "${BUILD_IMAGE} AS ctranslate2-cuda",
        "${RUNTIME_IMAGE} AS runtime",
        "runtime AS service-ctranslate2-cuda",
        "runtime AS service",
    ]
    assert not any("$" in stage.split(" AS ")[0] for stage in stages[2:]), "no stage is chosen by an argument"
    args = _args()
    assert "CTRANSLATE2" not in args
    assert re.fullmatch(r"13\.\d+\.\d+", args["CUDA_VERSION"])
    assert args["BUILD_IMAGE"] == "nvidia/cuda:${CUDA_VERSION}-cudnn-devel-ubuntu24.04"
    assert {"80", "90", "100", "120", "121"} <= set(args["CUDA_ARCHS"].split())
    assert args["PTX_ARCH"] == "121"
    assert any("scripts/build_ctranslate2.sh /wheels" in run for run in _all("RUN"))
    service = _stage("service")
    assert not any("ctranslate2-cuda" in rest for kw, rest in service if kw == "COPY")
    compiled = _stage("service-ctranslate2-cuda")
    assert ("COPY", "--from=ctranslate2-cuda /opt/ctranslate2/lib /opt/ctranslate2/lib") in compiled
    assert ("ENV", "CTRANSLATE2_WHEEL_DIR=/wheels") in compiled
    for stage in (service, compiled):  # dependencies first, the app after: an app change rebuilds one layer
        runs = [rest for kw, rest in stage if kw == "RUN"]
        assert runs == ["scripts/bootstrap.sh image-deps", "scripts/bootstrap.sh image"]
        assert stage.index(("COPY", "app/ app/")) > stage.index(("RUN", "scripts/bootstrap.sh image-deps"))


def _stage(name: str) -> list[tuple[str, str]]:
    """The instructions of the stage named ``name`` (after its FROM, up to the next FROM)."""
    rows = _instructions()
    start = next(i for i, (kw, rest) in enumerate(rows) if kw == "FROM" and rest.endswith(f" AS {name}"))
    end = next((i for i in range(start + 1, len(rows)) if rows[i][0] == "FROM"), len(rows))
    return rows[start + 1 : end]


def _build_options(**env: str) -> list[str]:
    script = REPO / "scripts" / "build_ctranslate2.sh"
    result = subprocess.run(
        [str(script), "--dry-run"], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


def test_ctranslate2_build_options():
    lines = _build_options()
    locked = re.search(r"^ctranslate2==(\S+)", (REPO / "constraints.txt").read_text(), flags=re.MULTILINE)
    assert locked and lines[0] == f"ctranslate2 v{locked[1]}", "the image builds the version the lock pins"
    options = dict(line.split("=", 1) for line in lines[1:])
    assert options["-DWITH_CUDA"] == options["-DWITH_CUDNN"] == options["-DCUDA_DYNAMIC_LOADING"] == "ON"
    # Legacy FindCUDA: one one-digit-major arch in CUDA_ARCH_LIST, the rest as -gencode flags.
    assert options["-DCUDA_ARCH_LIST"] == "8.0"
    gencode = options["-DCUDA_NVCC_FLAGS"].split(";")
    assert "-gencode=arch=compute_121,code=sm_121" in gencode
    assert "-gencode=arch=compute_120,code=sm_120" in gencode
    assert gencode[-1] == "-gencode=arch=compute_121,code=compute_121", "PTX for GPUs newer than the list"


def _nvcc() -> str | None:
    return shutil.which("nvcc") or next((p for p in ("/usr/local/cuda/bin/nvcc",) if Path(p).exists()), None)


@pytest.mark.skipif(_nvcc() is None, reason="needs the CUDA toolkit's nvcc")
def test_nvcc_accepts_the_architectures(tmp_path):
    """The installed CUDA 13 nvcc compiles a kernel for every architecture the image asks for."""
    options = dict(line.split("=", 1) for line in _build_options()[1:])
    kernel = tmp_path / "k.cu"
    kernel.write_text("__global__ void twice(float* x) { x[threadIdx.x] *= 2.f; }\n")
    flags = ["-gencode=arch=compute_80,code=sm_80", *options["-DCUDA_NVCC_FLAGS"].split(";")]
    subprocess.run([_nvcc(), "-c", str(kernel), "-o", str(tmp_path / "k.o"), *flags], check=True, timeout=300)


@pytest.mark.skipif(_nvcc() is None or shutil.which("cmake") is None, reason="needs cmake and the CUDA toolkit")
def test_findcuda_rejects_two_digit_majors_so_they_go_in_nvcc_flags(tmp_path):
    """The trap the build script avoids: CTranslate2's legacy FindCUDA cannot name sm_121."""
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.7)\nproject(probe)\nfind_package(CUDA 11.0 REQUIRED)\n"
        'cuda_select_nvcc_arch_flags(FIRST "8.0")\nmessage(STATUS "8.0 -> ${FIRST}")\n'
        'cuda_select_nvcc_arch_flags(GB10 "12.1")\n'
    )
    env = {**os.environ, "CUDACXX": str(_nvcc()), "PATH": f"{Path(str(_nvcc())).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "build"), "-Wno-dev"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "8.0 -> -gencode;arch=compute_80,code=sm_80" in result.stdout
    assert "Unknown CUDA Architecture Name 12.1" in result.stderr


def test_installs_through_the_ci_script_and_applies_patches():
    runs = " ".join(_all("RUN"))
    assert "scripts/bootstrap.sh image" in runs
    bootstrap = (REPO / "scripts" / "bootstrap.sh").read_text()
    assert re.search(r"torchaudio_complex_abs\.py\"? --check", bootstrap)
    assert "constraints.txt" in bootstrap
    assert _env()["PYTHONPATH"] == "/srv/patches", "sitecustomize must load in every process"


def test_runs_as_a_non_root_user():
    users = _all("USER")
    assert users and all(user.split(":")[0] not in ("0", "root") for user in users)


def test_builds_behind_a_tls_inspecting_proxy_and_needs_no_download_but_packages():
    """An extra CA comes as a build secret into the system's store, which every TLS client reads;
    NLTK's data comes from a package (bootstrap.sh fails the build without it); pyannote.audio's
    torchcodec warning must not print."""
    dockerfile = (REPO / "Dockerfile.gpu").read_text()
    assert "--mount=type=secret,id=extra_ca" in dockerfile and "update-ca-certificates" in dockerfile
    env = _env()
    for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT"):
        assert env[variable] == "/etc/ssl/certs/ca-certificates.crt"
    bootstrap = (REPO / "scripts" / "bootstrap.sh").read_text()
    assert "nltk.downloader" not in bootstrap and "-m app.engine.align.sentences" in bootstrap
    assert '"torchcodec" in str(w.message)' in bootstrap


def test_every_cache_a_library_keeps_is_in_the_model_volume():
    env = _env()
    for variable in ("HF_HOME", "XDG_CACHE_HOME", "MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        assert env[variable].startswith("/models/"), variable


def test_caches_are_volumes_and_jit_cache_is_kept():
    volumes = json.loads(_all("VOLUME")[0])
    assert {"/models", "/cuda-cache"} <= set(volumes)
    env = _env()
    assert env["CUDA_CACHE_PATH"] == "/cuda-cache"
    assert env["CUDA_CACHE_DISABLE"] == "0"
    assert env["CUDA_CACHE_MAXSIZE"] == "2147483648"
    assert env["CUDA_FORCE_PTX_JIT"] == "0"
    assert "CUDA_FORCE_PTX_JIT=1" not in (REPO / "Dockerfile.gpu").read_text()
    assert env["MODEL_CACHE_DIR"] == "/models"


def test_healthcheck_port_and_pid_1():
    [healthcheck] = _all("HEALTHCHECK")
    assert "--start-period=" in healthcheck and "/health" in healthcheck
    assert _all("EXPOSE") == ["8003"]
    entrypoint = json.loads(_all("ENTRYPOINT")[0])  # exec form: no shell in between
    assert entrypoint == ["scripts/entrypoint.sh"]
    script = (REPO / "scripts" / "entrypoint.sh").read_text()
    assert "exec python -m app" in script


def _run_sh(*args: str, user: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "XDG_DATA_HOME")}
    environment |= {"HOME": "/home/u", "DOCKER": "docker"} | env
    command = ["bash", str(REPO / "run.sh"), *args]
    if user is not None:  # as another user of this machine (the test runs as root)
        command = ["runuser", "-u", user, "--", "env", *(f"{k}={v}" for k, v in environment.items()), *command]
    return subprocess.run(command, env=environment, capture_output=True, text=True)


def test_run_sh_starts_with_the_jit_cache_mounted():
    result = _run_sh("--dry-run")
    assert result.returncode == 0, result.stderr
    command = result.stdout.split()
    assert command[:3] == ["docker", "run", "-d"]
    for flag in ("--gpus all", "--ipc=host", "-p 8003:8003"):
        assert flag in result.stdout
    for setting in (
        "CUDA_CACHE_DISABLE=0",
        "CUDA_CACHE_PATH=/cuda-cache",
        "CUDA_CACHE_MAXSIZE=2147483648",
        "CUDA_FORCE_PTX_JIT=0",
    ):
        assert f"-e {setting}" in result.stdout
    assert "/home/u/.local/share/transcription-service/cuda-cache:/cuda-cache" in result.stdout
    assert "/home/u/.local/share/transcription-service/models:/models" in result.stdout
    assert command[-1] == "transcription-service:gpu"


def test_run_sh_gives_docker_a_stop_timeout_past_the_drain():
    from app.config import Settings

    default = Settings.model_fields["shutdown_grace_s"].default
    result = _run_sh("--dry-run")
    assert f"--stop-timeout {int(default) + 10} -e SHUTDOWN_GRACE_S={int(default)}" in result.stdout
    result = _run_sh("--dry-run", SHUTDOWN_GRACE_S="5")
    assert "--stop-timeout 15 -e SHUTDOWN_GRACE_S=5" in result.stdout
    assert _run_sh("--dry-run", SHUTDOWN_GRACE_S="soon").returncode == 2


def test_run_sh_options():
    result = _run_sh("--dry-run", "--port", "9000", "--image", "me/ts:1", "--gpus", "device=1", "--name", "ts1")
    assert "-p 9000:8003" in result.stdout
    assert "--gpus device=1" in result.stdout
    assert "--name ts1" in result.stdout
    assert result.stdout.split()[-1] == "me/ts:1"


def test_run_sh_passes_the_token_by_name_only():
    result = _run_sh("--dry-run", HF_TOKEN="hf_very_secret")
    assert "-e HF_TOKEN " in result.stdout + " "
    assert "hf_very_secret" not in result.stdout + result.stderr


def test_run_sh_passes_settings_through(tmp_path):
    """Any documented setting: -e NAME=VALUE, -e NAME (this shell's value, by name), or an env file."""
    env_file = tmp_path / "service.env"
    env_file.write_text("WHISPER_MODELS=large-v3-turbo\n")
    result = _run_sh(
        "--dry-run", "-e", "OFFLINE=true", "-e", "DEVICE=cpu", "-e", "API_KEYS", "--env-file", str(env_file),
        "-e", "WHISPER_MODEL=/models/mine", API_KEYS="key-that-stays-in-the-environment",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for passed in ("-e OFFLINE=true", "-e DEVICE=cpu", "-e API_KEYS ", f"--env-file {env_file}", "-e WHISPER_MODEL="):
        assert passed in result.stdout
    assert "key-that-stays-in-the-environment" not in result.stdout + result.stderr
    prewarm = _run_sh("prewarm", "--dry-run", "-e", "OFFLINE=true")
    assert "-e OFFLINE=true" in prewarm.stdout


@pytest.mark.parametrize(
    "args", [("-e", "PORT=9000"), ("-e", "HOST=127.0.0.1"), ("-e", "=x"), ("-e", "A B=1"), ("--env-file", "/nope")]
)
def test_run_sh_refuses_settings_it_cannot_pass(args):
    result = _run_sh("--dry-run", *args)
    assert result.returncode == 2 and "run.sh:" in result.stderr


def test_run_sh_runs_the_service_as_the_owner_of_the_cache_folders(tmp_path):
    """Host folders keep their owner's uid: the service runs as that user, so it can write them."""
    for folder in ("models", "cuda-cache"):
        (tmp_path / "transcription-service" / folder).mkdir(parents=True)
        os.chown(tmp_path / "transcription-service" / folder, 1234, 1234)
    result = _run_sh("--dry-run", XDG_DATA_HOME=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "--user 1234:1234" in result.stdout


@pytest.mark.skipif(os.getuid() != 0, reason="as root")
def test_run_sh_as_root_gives_new_folders_to_the_images_user_and_refuses_roots_own(tmp_path):
    fresh = _run_sh("--dry-run", XDG_DATA_HOME=str(tmp_path / "fresh"))
    assert "--user 10001:10001" in fresh.stdout
    (tmp_path / "root" / "transcription-service" / "models").mkdir(parents=True)
    (tmp_path / "root" / "transcription-service" / "cuda-cache").mkdir(parents=True)
    refused = _run_sh("--dry-run", XDG_DATA_HOME=str(tmp_path / "root"))
    assert refused.returncode == 2 and "does not run as root" in refused.stderr and "chown" in refused.stderr
    os.chown(tmp_path / "root" / "transcription-service" / "models", 1234, 1234)
    mixed = _run_sh("--dry-run", XDG_DATA_HOME=str(tmp_path / "root"))
    assert mixed.returncode == 2 and "different owners" in mixed.stderr


@pytest.mark.skipif(os.getuid() != 0 or shutil.which("runuser") is None, reason="runs run.sh as another user")
def test_run_sh_on_podman_reaches_the_gpu_through_cdi_and_keeps_a_rootless_users_id(tmp_path):
    tmp_path.chmod(0o755)
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 65534, 65534)  # nobody's
    rootless = _run_sh("--dry-run", user="nobody", DOCKER="podman", XDG_DATA_HOME=str(data))
    assert rootless.returncode == 0, rootless.stderr
    assert "--userns=keep-id --user 65534:65534" in rootless.stdout
    assert "--device nvidia.com/gpu=all" in rootless.stdout and "--gpus" not in rootless.stdout
    two = _run_sh("--dry-run", "--gpus", "device=0,1", DOCKER="podman", XDG_DATA_HOME=str(tmp_path / "r"))
    assert "--device nvidia.com/gpu=0 --device nvidia.com/gpu=1" in two.stdout
    cpu = _run_sh("--dry-run", "--gpus", "none", DOCKER="podman", XDG_DATA_HOME=str(tmp_path / "r"))
    assert "nvidia.com" not in cpu.stdout and "--gpus" not in cpu.stdout


def test_run_sh_prewarm_runs_once_and_exits():
    result = _run_sh("prewarm", "--dry-run")
    command = result.stdout.split()
    assert command[:3] == ["docker", "run", "--rm"]
    assert command[-1] == "prewarm"
    assert "-e CUDA_CACHE_PATH=/cuda-cache" in result.stdout


@pytest.mark.parametrize("args", [("--bogus",), ("launch",), ("--port",), ("--port", "eighty")])
def test_run_sh_refuses_bad_arguments(args):
    result = _run_sh(*args, "--dry-run") if args != ("--port",) else _run_sh(*args)
    assert result.returncode == 2
    assert "run.sh:" in result.stderr
