"""Session fixtures for the daemonless image: one build of the test Cortexfile, Podman's CLI set up for
this machine, and a password-protected registry. Every image, container and process they make is
removed at teardown; the layer cache stays (keyed by its inputs)."""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ...conftest import find_free_port
from ...processes import stop
from ..docker_image.engine_parts import CONTAINERS_CONF, run_cortex, serve_registry, wait_for

TOOLS = ("podman", "skopeo", "debootstrap", "docker-registry", "htpasswd", "openssl")
API_KEY = "oci-test-" + secrets.token_hex(8)
CORTEXFILE = """\
version: 1
models:
  - id: gemma
    preset: gemma3-270m-q4km
server:
  auth:
    api_keys:
      - ${env:CORTEX_TEST_KEY}
"""


@dataclass(frozen=True)
class OciBuild:
    cortexfile: Path
    model_store: Path
    output: Path
    stdout: str
    environ: dict[str, str]  # what `cortex build` ran with
    command: tuple[str, ...]  # the cortex it ran: the installed one

    @property
    def layout(self) -> Path:
        return next(self.output.glob("*.oci"))

    @property
    def archive(self) -> Path:
        return next(self.output.glob("*-amd64.tar"))

    @property
    def sbom(self) -> Path:
        return next(self.output.glob("*-amd64.spdx.json"))


@pytest.fixture(scope="session")
def oci_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/setup.sh (it installs them)")
    if os.geteuid() != 0:
        pytest.skip("the OCI image tests build a Debian root and drive rootful Podman")


@dataclass(frozen=True)
class TlsRegistry:
    address: str  # 127.0.0.1:PORT
    user: str
    password: str
    ca_file: Path  # the registry's self-signed certificate: what a private registry's CA is to a client


def start_tls_registry(
    folder: Path, port: int, user: str, password: str
) -> tuple[subprocess.Popen[bytes], TlsRegistry]:
    """Debian's docker-registry on loopback, over TLS with a certificate of its own, asking for a password."""
    cert, key = folder / "registry.crt", folder / "registry.key"
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"]
    subprocess.run(
        [*openssl, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True,
        check=True,
    )
    tls = f"  tls:\n    certificate: {cert}\n    key: {key}\n"
    process = serve_registry(folder, port, user, password, tls)
    registry = TlsRegistry(f"127.0.0.1:{port}", user, password, cert)
    try:
        wait_for(lambda: _asks_for_password(registry), "the registry to ask for a password over TLS")
    except AssertionError:
        stop(process)
        raise
    return process, registry


def _asks_for_password(registry: TlsRegistry) -> bool:
    context = ssl.create_default_context(cafile=str(registry.ca_file))
    try:
        urllib.request.urlopen(f"https://{registry.address}/v2/", timeout=5, context=context).close()
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except OSError:
        return False
    return False


@pytest.fixture(scope="session")
def oci_registry(oci_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRegistry]:
    folder = tmp_path_factory.mktemp("registry")
    process, started = start_tls_registry(folder, find_free_port(), "cortex", secrets.token_hex(8))
    yield started
    stop(process)


@pytest.fixture(scope="session")
def podman_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Podman's settings for this machine: runc, and the ulimits it may set."""
    folder = tmp_path_factory.mktemp("podman-conf")
    (folder / "containers.conf").write_text(CONTAINERS_CONF, encoding="utf-8")
    return dict(os.environ, CONTAINERS_CONF=str(folder / "containers.conf"))


@pytest.fixture(scope="session")
def oci_build(
    oci_tools: None, test_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, installed_cortex: Path
) -> OciBuild:
    """The image every OCI test runs, built by `cortex` installed from its wheel outside the checkout."""
    folder = tmp_path_factory.mktemp("oci")
    cortexfile = folder / "Cortexfile.yaml"
    cortexfile.write_text(CORTEXFILE, encoding="utf-8")
    environ = {key: value for key, value in os.environ.items() if key != "SOURCE_DATE_EPOCH"}
    args = ["build", "-f", str(cortexfile), "--format", "oci", "-o", str(folder / "out")]
    command = (str(installed_cortex),)
    done = run_cortex([*args, "--datapath", str(test_data_dir)], environ, command=command)
    assert done.returncode == 0, done.stderr
    return OciBuild(cortexfile, test_data_dir, folder / "out", done.stdout, environ, command)


@pytest.fixture
def loaded(oci_build: OciBuild, podman_env: dict[str, str]) -> Iterator[str]:
    """The archive loaded into Podman's store; the reference it loaded as (removed at teardown)."""
    done = subprocess.run(
        ["podman", "load", "-i", str(oci_build.archive)], env=podman_env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    reference = done.stdout.strip().rpartition("Loaded image: ")[2].strip()
    yield reference
    subprocess.run(["podman", "rmi", "-f", reference], env=podman_env, capture_output=True, check=False)
