"""`cortex lock` pins a multi-platform base by its index, the digest its tag names for every platform: Podman lists
this machine's own manifest beside it, and a lock that pinned that one would build an arm64 image FROM amd64's.
A real index (amd64 and arm64 images) in the real registry, pulled by Podman through docker-py."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from menlo_cortex.images.targets.docker.engine import EngineError
from menlo_cortex.images.targets.docker.pins import Bases, digests

from .engine_parts import PodmanApi, Registry

pytestmark = pytest.mark.slow
PLATFORMS = ("amd64", "arm64")


def push_index(podman_api: PodmanApi, registry: Registry, folder: Path) -> tuple[str, str]:
    """A two-platform index at `registry`/cortex/multi:1 (FROM scratch: no emulation); (its name, its digest)."""
    name = f"{registry.address}/cortex/multi:1"
    credentials = f"{registry.user}:{registry.password}"
    locals_ = [f"localhost/cortex-multi:{platform}" for platform in PLATFORMS]
    podman(podman_api, "manifest", "create", name)
    try:
        for platform, local in zip(PLATFORMS, locals_, strict=True):
            context = folder / platform
            context.mkdir()
            (context / "platform").write_text(platform)
            (context / "Dockerfile").write_text("FROM scratch\nCOPY platform /platform\n")
            podman(podman_api, "build", "--no-cache", "--platform", f"linux/{platform}", "-t", local, str(context))
            podman(podman_api, "manifest", "add", name, f"containers-storage:{local}")
        podman(podman_api, "manifest", "push", "--all", "--tls-verify=false", "--creds", credentials, name,
               f"docker://{name}")  # fmt: skip
    finally:
        podman_api.podman("manifest", "rm", name)
        podman_api.podman("rmi", "--force", *locals_)
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", credentials, f"docker://{name}"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert raw.count(b'"architecture"') == len(PLATFORMS)  # an index of both
    return name, "sha256:" + hashlib.sha256(raw).hexdigest()


def podman(podman_api: PodmanApi, *args: str) -> None:
    done = podman_api.podman(*args)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_multi_platform_base_is_pinned_by_its_index(
    podman_api: PodmanApi, registry: Registry, tmp_path: Path
) -> None:
    name, index = push_index(podman_api, registry, tmp_path)
    repository = name.rsplit(":", 1)[0]
    client = podman_api.client()
    auth = {"username": registry.user, "password": registry.password}
    podman(podman_api, "login", "--tls-verify=false", "-u", registry.user, "-p", registry.password, registry.address)
    try:
        pulled = client.images.pull(name, auth_config=auth)
        held = {digest.split("@")[1] for digest in pulled.attrs["RepoDigests"] if digest.startswith(repository + "@")}
        assert index in held
        assert len(held) > 1  # this machine's manifest beside the index: the case a lock got wrong
        assert digests(client, Bases(name, name)) == {name: f"{repository}@{index}"}

        manifest = f"{repository}@{sorted(held - {index})[0]}"  # named by digest: kept as named
        assert digests(client, Bases(manifest, manifest)) == {manifest: manifest}

        podman(podman_api, "rmi", "--force", name)
        client.images.pull(manifest, auth_config=auth)
        client.images.pull(name, auth_config=auth)
        first = podman_api.podman("image", "inspect", "--format", "{{.Digest}}", name).stdout.strip()
        assert f"{repository}@{first}" == manifest  # what Podman says it holds the image under: not the tag's
        assert digests(client, Bases(name, name)) == {name: f"{repository}@{index}"}

        podman(podman_api, "logout", registry.address)  # the registry cannot be asked: refused, not guessed
        with pytest.raises(EngineError, match="the registry could not tell which one its tag names"):
            digests(client, Bases(name, name))
    finally:
        podman_api.podman("rmi", "--force", name)
        podman_api.podman("logout", registry.address)  # the other tests' pushes start without credentials
