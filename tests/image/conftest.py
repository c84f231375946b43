"""Image tier: build Dockerfile.gpu (scripts/build_image.sh) and run it as users do (run.sh).

`IMAGE_PLATFORM=linux/arm64` runs the same tier on the arm64 image under emulation;
`IMAGE_TAG=NAME` skips the build and tests that image.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.containers import (
    HOST_ARCH,
    Deployment,
    as_user,
    build_image,
    container_environment,
    engine_name,
    host_user,
)
from tests.support.server import free_port

PLATFORM = os.environ.get("IMAGE_PLATFORM", f"linux/{HOST_ARCH}")
ARCH = PLATFORM.removeprefix("linux/")
# Under qemu every step of the image is several times slower: deadlines grow with it.
SLOWDOWN = 1.0 if ARCH == HOST_ARCH else 12.0
_names = itertools.count()
Deploy = Callable[..., Deployment]


@pytest.fixture(scope="session")
def engine_env() -> dict[str, str]:
    return container_environment(ARCH)


@pytest.fixture(scope="session")
def image(engine_env: dict[str, str]) -> str:
    return build_image(PLATFORM, engine_env)


@pytest.fixture(scope="session")
def user() -> pwd.struct_passwd:
    return host_user()


@contextmanager
def _deployments(engine_env: dict[str, str], image: str) -> Iterator[Deploy]:
    """A factory of Deployments, each with host folders of its own (made by ``owner``, if given); all removed after."""
    made: list[Deployment] = []
    # pytest's own temp folder is root's alone (0700): the host user must reach its folders.
    root = Path(tempfile.mkdtemp(prefix="ts-image-", dir="/var/tmp"))
    root.chmod(0o755)

    def make(owner: pwd.struct_passwd | None = None) -> Deployment:
        data_home = Path(tempfile.mkdtemp(prefix="data-home-", dir=root))
        data_home.chmod(0o755)
        if owner is not None:
            os.chown(data_home, owner.pw_uid, owner.pw_gid)
            for folder in ("models", "cuda-cache"):
                as_user(owner, "mkdir", "-p", str(data_home / "transcription-service" / folder))
        name = f"ts-image-test-{os.getpid()}-{next(_names)}"
        deployment = Deployment(engine_name(), engine_env, image, name, free_port(), data_home, slowdown=SLOWDOWN)
        made.append(deployment)
        return deployment

    try:
        yield make
    finally:
        for deployment in made:
            deployment.remove()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def deploy(engine_env: dict[str, str], image: str) -> Iterator[Deploy]:
    with _deployments(engine_env, image) as make:
        yield make


@pytest.fixture(scope="module")
def deploy_module(engine_env: dict[str, str], image: str) -> Iterator[Deploy]:
    with _deployments(engine_env, image) as make:
        yield make


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("image")
