"""Session fixtures for the end-to-end image tests; every process, container and image they
start is stopped or removed at teardown (the debootstrap base stays cached, keyed by its inputs)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.models.containers
import pytest
from menlo_cortex.images.project_wheel import build_project_wheel

from ...conftest import ROOT, cache_dir, find_free_port
from ...processes import stop
from .authproxy import AuthProxy
from .engine_parts import PodmanApi, Registry, run_cortex, start_podman_service, start_registry, tools_missing
from .localbase import BaseSpec, ensure_base_image

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
E2E_CORTEXFILE = """version: 1
server:
  port: {port}
  auth:
    api_keys: ["${{env:CORTEX_E2E_API_KEY}}"]
models:
  - id: gemma
    preset: gemma3-270m-q4km
build:
  network:
    proxy: ${{env:CORTEX_E2E_BUILD_PROXY}}
    no_proxy: [internal.example]
    ca_certificates: [{ca}]
    pip_index_url: ${{env:CORTEX_E2E_PIP_INDEX}}
"""


@pytest.fixture(scope="session")
def engine_tools() -> None:
    missing = tools_missing()
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/setup.sh (it installs them)")
    if os.geteuid() != 0:
        pytest.skip("the image tests drive rootful Podman")


@pytest.fixture(scope="session")
def registry(engine_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    folder = tmp_path_factory.mktemp("registry")
    process, started = start_registry(folder, find_free_port(), "cortex", "pw-" + secrets.token_hex(8))
    yield started
    stop(process)


@pytest.fixture(scope="session")
def podman_api(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanApi]:
    registries = f'unqualified-search-registries = []\n[[registry]]\nlocation = "{registry.address}"\ninsecure = true\n'
    process, api = start_podman_service(tmp_path_factory.mktemp("podman"), registries)
    before = set(_image_ids(api))
    yield api
    for container in api.client().containers.list(all=True, filters={"label": "cortex-test=1"}):
        container.remove(force=True)
    for image_id in set(_image_ids(api)) - before:  # what this session built, intermediate layers included
        api.podman("image", "rm", "--force", image_id)
    api.close()
    stop(process)


def _image_ids(api: PodmanApi) -> list[str]:
    return api.podman("images", "--all", "--quiet", "--no-trunc", check=True).stdout.split()


@pytest.fixture(scope="session")
def base_image(podman_api: PodmanApi) -> str:
    """Debian 12 made here with debootstrap (no registry is reachable), cached between runs."""
    return ensure_base_image(BaseSpec(), cache_dir() / "bases")


@pytest.fixture(scope="session")
def llama_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The llama-cpp-python wheel compiled once on this host (scripts/llama-wheel.sh), and this
    checkout's wheel built once per session, so every build of the session sees the same runtime."""
    environ = dict(os.environ, PYTHON=sys.executable)  # this venv, also in a worktree
    script = [str(ROOT / "scripts" / "llama-wheel.sh")]
    done = subprocess.run(script, env=environ, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    folder = tmp_path_factory.mktemp("wheels")
    for wheel in Path(done.stdout.strip()).glob("*.whl"):
        (folder / wheel.name).symlink_to(wheel)
    build_project_wheel(folder)
    return folder


@pytest.fixture(scope="session")
def build_proxy() -> Iterator[AuthProxy]:
    proxy = AuthProxy("cortex", "proxy-pw-" + secrets.token_hex(8))
    proxy.start()
    yield proxy
    proxy.stop()


@dataclass
class E2EBuild:
    """The Debian CPU image built once per session through `cortex build`."""

    folder: Path
    cortexfile: Path
    tag: str
    port: int
    secrets: dict[str, str]  # what must never be found in the image
    environ: dict[str, str]  # what `cortex build` ran with
    args: list[str]
    output: str
    seconds: float


@pytest.fixture(scope="session")
def e2e_build(  # noqa: PLR0917 - pytest injects fixtures by name
    podman_api: PodmanApi,
    base_image: str,
    llama_wheels: Path,
    build_proxy: AuthProxy,
    test_model_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> E2EBuild:
    folder = tmp_path_factory.mktemp("e2e")
    port = find_free_port()
    cortexfile = folder / "Cortexfile.yaml"
    cortexfile.write_text(E2E_CORTEXFILE.format(port=port, ca=HOST_CA_BUNDLE), encoding="utf-8")
    (folder / "gemma-3-270m-q4_k_m.gguf").symlink_to(test_model_path)
    token = "pip-token-" + secrets.token_hex(8)
    environ = dict(
        os.environ,
        DOCKER_HOST=podman_api.docker_host,
        CORTEX_E2E_BUILD_PROXY=build_proxy.url,
        CORTEX_E2E_PIP_INDEX=f"https://cortex:{token}@pypi.org/simple",
    )
    tag = f"localhost/cortex-e2e:{secrets.token_hex(4)}"
    args = ["build", "-f", str(cortexfile), "--tag", tag, "--wheels", str(llama_wheels), "--base-image", base_image]
    started = time.monotonic()
    done = run_cortex([*args, "--context-dir", str(folder / "context")], environ)
    assert done.returncode == 0, done.stdout + done.stderr
    found = {"proxy password": build_proxy.password, "pip index token": token}
    return E2EBuild(folder, cortexfile, tag, port, found, environ, args, done.stderr, time.monotonic() - started)


@pytest.fixture
def run_container(podman_api: PodmanApi) -> Iterator[object]:
    """`run_container(image, **kwargs)`: a detached container on the host network, removed at teardown."""
    started: list[docker.models.containers.Container] = []

    def run(image: str, **kwargs: object) -> docker.models.containers.Container:
        container = podman_api.client().containers.run(
            image, detach=True, network_mode="host", labels={"cortex-test": "1"}, **kwargs
        )
        started.append(container)
        return container

    yield run
    for container in started:
        container.remove(force=True)
