"""The image as users run it: built by scripts/build_image.sh, started by run.sh, on Docker or
Podman (whichever this machine has; buildah and Podman from Debian where no Docker engine runs).

Used by the image tier (tests/image/). Every wait has a deadline that grows under emulation
(arm64 on an x86-64 host runs several times slower).
"""

from __future__ import annotations

import os
import platform
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def container_environment(arch: str) -> dict[str, str]:
    """This process's environment plus what scripts/container_tools.sh sets up (it installs the tools if missing)."""
    script = f'. "{REPO}/scripts/container_tools.sh" && ensure_container_tools {arch} && echo "$CONTAINERS_CONF"'
    conf = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout.strip()
    return {**os.environ, "CONTAINERS_CONF": conf}


def engine_name() -> str:
    """Docker when its engine answers, else Podman: what run.sh chooses."""
    if shutil.which("docker"):
        answer = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True)
        if answer.returncode == 0:
            return "docker"
    return "podman"


def build_image(platform_name: str, env: dict[str, str]) -> str:
    """The image's tag: $IMAGE_TAG if given, else scripts/build_image.sh's build (minutes)."""
    if os.environ.get("IMAGE_TAG"):
        return os.environ["IMAGE_TAG"]
    result = subprocess.run(
        [str(REPO / "scripts" / "build_image.sh"), "--platform", platform_name], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise AssertionError(f"the image did not build:\n{result.stderr[-6000:]}")
    print(result.stderr[-3000:])  # the build's last steps, in the CI log
    return result.stdout.strip().splitlines()[-1]


def host_user() -> pwd.struct_passwd:
    """A non-root user of this machine who owns the host folders (created here when running as root)."""
    if os.getuid() != 0:
        return pwd.getpwuid(os.getuid())
    try:
        return pwd.getpwnam("tsimage")
    except KeyError:
        subprocess.run(["useradd", "--create-home", "tsimage"], check=True)
        return pwd.getpwnam("tsimage")


def as_user(user: pwd.struct_passwd, *command: str) -> None:
    if os.getuid() == user.pw_uid:
        subprocess.run(command, check=True)
    else:
        subprocess.run(["runuser", "-u", user.pw_name, "--", *command], check=True)


@dataclass
class Deployment:
    """One container that run.sh started: its name, port and host folders."""

    engine: str
    env: dict[str, str]
    image: str
    name: str
    port: int
    data_home: Path
    slowdown: float = 1.0
    # Long enough for the sample to finish on a loaded CI machine: the drain test proves the
    # drain's order (work in flight answered, then exit 0), not its speed.
    grace_s: int = 180

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def models(self) -> Path:
        return self.data_home / "transcription-service" / "models"

    @property
    def cuda_cache(self) -> Path:
        return self.data_home / "transcription-service" / "cuda-cache"

    def run_sh(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "DOCKER": self.engine, "XDG_DATA_HOME": str(self.data_home)}
        env["SHUTDOWN_GRACE_S"] = str(self.grace_s)
        command = ["bash", str(REPO / "run.sh"), *args, "--image", self.image, "--name", self.name]
        if args[:1] != ("prewarm",):
            command += ["--port", str(self.port)]
        return subprocess.run(
            [*command, "--gpus", "none"], env=env, capture_output=True, text=True, timeout=timeout_s * self.slowdown
        )

    def engine_run(self, *args: str, check: bool = True, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.engine, *args], env=self.env, capture_output=True, text=True, check=check,
            timeout=timeout_s * self.slowdown,
        )  # fmt: skip

    def exec(self, *command: str) -> str:
        return self.engine_run("exec", self.name, *command).stdout

    def logs(self) -> str:
        result = self.engine_run("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exists(self) -> bool:
        return self.engine_run("container", "inspect", self.name, check=False).returncode == 0

    def health(self, require: str | None = None) -> httpx.Response:
        return httpx.get(f"{self.url}/health", params={"require": require} if require else None, timeout=10)

    def wait_ready(self, timeout_s: float = 300, require: str | None = "all") -> dict:
        deadline = time.monotonic() + timeout_s * self.slowdown
        while time.monotonic() < deadline:
            try:
                reply = self.health(require)
                if reply.status_code == 200:
                    return reply.json()
            except httpx.HTTPError:
                pass
            if not self.exists():
                raise AssertionError(f"{self.name} stopped before it was ready:\n{self.logs()[-4000:]}")
            time.sleep(0.5)
        raise AssertionError(f"{self.name} was not ready in {timeout_s * self.slowdown:.0f} s:\n{self.logs()[-4000:]}")

    def remove(self) -> None:
        self.engine_run("rm", "-f", self.name, check=False)
