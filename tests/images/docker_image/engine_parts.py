"""Real parts for the image tests: Podman's Docker-API service, a password-protected registry,
and the `cortex` CLI run as a user would. Each one is stopped by the fixture that starts it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import openai
from openai.types.chat import ChatCompletion

from ...processes import stop

CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
runtime = "runc"
"""


def wait_for(check: Callable[[], bool], what: str, deadline_s: float = 60.0, every_s: float = 0.25) -> None:
    """Poll `check` until it is true; fail naming `what` after the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if check():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {deadline_s:.0f}s waiting for {what}")


def answers_health(port: int) -> bool:
    """Whether a server on the host's loopback answers `/health` with 200: alive, models maybe not loaded."""
    return _answers_200(port, "/health")


def answers_ready(port: int) -> bool:
    """Whether it answers `/ready` with 200: every model it loads at start is loaded (503 while loading
    and when one failed)."""
    return _answers_200(port, "/ready")


def _answers_200(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return int(answer.status) == 200
    except OSError:
        return False


def chat_completion(port: int, api_key: str, model: str = "gemma") -> ChatCompletion:
    """One short chat completion from a server on the host's loopback, through the official openai client."""
    with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=api_key) as client:
        return client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=16
        )


@dataclass
class PodmanApi:
    docker_host: str
    environ: dict[str, str]  # for podman CLI calls that must see the same config
    _client: docker.DockerClient | None = None

    def client(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.docker_host, version="1.41", timeout=600)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def podman(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", *args], env=self.environ, capture_output=True, text=True, check=check)


def start_podman_service(folder: Path, registries_conf: str) -> tuple[subprocess.Popen[bytes], PodmanApi]:
    (folder / "containers.conf").write_text(CONTAINERS_CONF, encoding="utf-8")
    (folder / "registries.conf").write_text(registries_conf, encoding="utf-8")
    environ = dict(
        os.environ,
        CONTAINERS_CONF=str(folder / "containers.conf"),
        CONTAINERS_REGISTRIES_CONF=str(folder / "registries.conf"),
        BUILDAH_ISOLATION="chroot",  # the default OCI runtime cannot run build steps here
    )
    path = folder / "podman.sock"
    command = ["podman", "system", "service", "--time=0", f"unix://{path}"]
    with (folder / "service.log").open("wb") as log:
        process = subprocess.Popen(command, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    api = PodmanApi(f"unix://{path}", environ)
    try:
        wait_for(lambda: _accepts(path), "podman's API service")
    except AssertionError:
        stop(process)
        raise
    return process, api


def _accepts(path: Path) -> bool:
    """Probe the socket ourselves: docker-py leaks the socket of a failed connection attempt."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@dataclass
class Registry:
    address: str  # 127.0.0.1:PORT
    user: str
    password: str

    def status(self, path: str, auth: tuple[str, str] | None) -> int:
        request = urllib.request.Request(f"http://{self.address}{path}", method="GET")
        request.add_header("Accept", "application/vnd.oci.image.manifest.v1+json")
        request.add_header("Accept", "application/vnd.docker.distribution.manifest.v2+json")
        if auth is not None:
            import base64

            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0


def serve_registry(folder: Path, port: int, user: str, password: str, tls: str = "") -> subprocess.Popen[bytes]:
    """Debian's docker-registry on loopback asking for `user`'s password; `tls`: the http.tls block."""
    htpasswd = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=True)
    (folder / "htpasswd").write_text(htpasswd.stdout, encoding="utf-8")
    (folder / "data").mkdir()
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{tls}"
        f"auth:\n  htpasswd:\n    realm: cortex-test\n    path: {folder / 'htpasswd'}\n",
        encoding="utf-8",
    )
    with (folder / "registry.log").open("wb") as log:
        command = ["docker-registry", "serve", str(config)]
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def start_registry(folder: Path, port: int, user: str, password: str) -> tuple[subprocess.Popen[bytes], Registry]:
    process = serve_registry(folder, port, user, password)
    registry = Registry(f"127.0.0.1:{port}", user, password)
    try:
        wait_for(lambda: registry.status("/v2/", None) == 401, "the registry to ask for a password")
    except AssertionError:
        stop(process)
        raise
    return process, registry


CHECKOUT = (sys.executable, "-m", "menlo_cortex")  # this checkout's cortex (else an installed one's path)


def run_cortex(
    args: list[str], environ: Mapping[str, str], timeout: float = 1500, command: Sequence[str] = CHECKOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *args],
        env=dict(environ),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def tools_missing() -> list[str]:
    return [tool for tool in ("podman", "debootstrap", "docker-registry", "htpasswd") if shutil.which(tool) is None]
