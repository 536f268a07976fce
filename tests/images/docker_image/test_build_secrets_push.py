"""Build secrets stay in the builder stages; --push reaches a registry that demands a password,
with the credentials of the usual config.json. Slow (real engine, registry and proxy)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from .authproxy import AuthProxy
from .conftest import E2EBuild
from .engine_parts import PodmanApi, Registry, run_cortex
from .imagescan import find_in_archive

pytestmark = pytest.mark.slow


def _needles(e2e: E2EBuild, proxy: AuthProxy) -> dict[str, bytes]:
    needles = {what: value.encode() for what, value in e2e.secrets.items()}
    needles["proxy credentials (Basic)"] = base64.b64encode(f"{proxy.user}:{proxy.password}".encode())
    return needles


def test_the_build_used_the_secrets(e2e_build: E2EBuild, build_proxy: AuthProxy) -> None:
    assert build_proxy.authenticated > 0  # apt and pip went through the password-protected proxy
    env_file = e2e_build.folder / "context" / "build" / "env.sh"
    assert e2e_build.secrets["proxy password"] in env_file.read_text(encoding="utf-8")
    assert env_file.stat().st_mode & 0o777 == 0o600


def test_no_secret_in_any_layer_config_or_history(
    e2e_build: E2EBuild, build_proxy: AuthProxy, podman_api: PodmanApi, tmp_path: Path
) -> None:
    client = podman_api.client()
    archive = tmp_path / "image.tar"
    with archive.open("wb") as out:
        for chunk in client.images.get(e2e_build.tag).save():
            out.write(chunk)
    needles = _needles(e2e_build, build_proxy)
    assert find_in_archive(archive, needles) == []
    history = json.dumps(client.api.history(e2e_build.tag)).encode()
    inspected = json.dumps(client.images.get(e2e_build.tag).attrs).encode()
    for what, needle in needles.items():
        assert needle not in history, f"{what} in the image history"
        assert needle not in inspected, f"{what} in the image config"


def test_scanner_finds_what_it_looks_for(e2e_build: E2EBuild, podman_api: PodmanApi, tmp_path: Path) -> None:
    """The scan above means something: a string that is in a layer (the Cortexfile) is found."""
    archive = tmp_path / "image.tar"
    with archive.open("wb") as out:
        for chunk in podman_api.client().images.get(e2e_build.tag).save():
            out.write(chunk)
    marker = b"CORTEX_E2E_BUILD_PROXY"  # written (as a reference) in the baked Cortexfile
    assert any("etc/cortex/Cortexfile.yaml" in hit for hit in find_in_archive(archive, {"marker": marker}))


def _docker_config(folder: Path, registry: Registry, password: str) -> Path:
    folder.mkdir()
    auth = base64.b64encode(f"{registry.user}:{password}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {registry.address: {"auth": auth}}}), encoding="utf-8")
    return folder


def test_push_to_a_registry_with_password_auth(e2e_build: E2EBuild, registry: Registry, tmp_path: Path) -> None:
    config = _docker_config(tmp_path / "docker", registry, registry.password)
    reference = f"{registry.address}/cortex/e2e:pushed"
    args = [*e2e_build.args[:3], "--tag", reference, "--push", *e2e_build.args[5:]]
    done = run_cortex(args, {**e2e_build.environ, "DOCKER_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr
    assert registry.status("/v2/cortex/e2e/manifests/pushed", (registry.user, registry.password)) == 200
    assert registry.status("/v2/cortex/e2e/manifests/pushed", None) == 401


def test_push_with_wrong_credentials_fails_clearly(e2e_build: E2EBuild, registry: Registry, tmp_path: Path) -> None:
    config = _docker_config(tmp_path / "docker", registry, "not-the-password")
    reference = f"{registry.address}/cortex/e2e:refused"
    args = [*e2e_build.args[:3], "--tag", reference, "--push", *e2e_build.args[5:]]
    done = run_cortex(args, {**e2e_build.environ, "DOCKER_CONFIG": str(config)})
    assert done.returncode == 1
    assert f"push of {reference} failed" in done.stderr
    assert registry.status("/v2/cortex/e2e/manifests/refused", (registry.user, registry.password)) == 404
