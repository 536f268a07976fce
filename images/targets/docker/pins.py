"""Base images by digest: `cortex lock` records the digest of each base the Dockerfile names (as the
engine holds it), and `cortex build --format docker --locked` builds FROM those digests, so a tag
that moved upstream cannot change what the image is made of."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import requests
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin
from menlo_cortex.cortexfile.loader import Resolved

from .engine import EngineError
from .matrix import flavor

DIGEST = r"@sha256:[0-9a-f]{64}"


@dataclass(frozen=True)
class Bases:
    runtime: str
    builder: str

    def references(self) -> list[str]:
        return sorted({self.runtime, self.builder})


def bases(image_view: Resolved, base_image: str | None, builder_image: str | None) -> Bases:
    """The images the Dockerfile names FROM (as render_dockerfile chooses them)."""
    target = image_view.config.target
    chosen = flavor(target.distro.value, target.accelerator.value, target.release.value, target.cuda_version.value,
                    architecture=target.architecture.value, jetson=target.jetson)  # fmt: skip
    return Bases(base_image or chosen.runtime_image, builder_image or base_image or chosen.builder_image)


def digests(client: docker.DockerClient, found: Bases) -> dict[str, str]:
    """reference -> reference@sha256:..., from the engine's copy (pulled when it has none)."""
    return {reference: _digest(client, reference) for reference in found.references()}


def _repository(reference: str) -> str:
    """`host:5000/team/debian:12@sha256:...` -> `host:5000/team/debian`."""
    name = reference.split("@", maxsplit=1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rpartition("/")[2] else name


def _digest(client: docker.DockerClient, reference: str) -> str:
    repository = _repository(reference)
    image = _held(client, reference)
    if pinned_digest := re.search(DIGEST + r"\Z", reference):  # already pinned: kept as named
        return repository + pinned_digest.group()
    held = image.attrs.get("RepoDigests") or []
    named = sorted({digest.split("@")[1] for digest in held if digest.split("@")[0] in _names(repository)})
    if not named:
        raise EngineError(f"base image {reference}: the engine knows no digest for it (RepoDigests is empty)")
    return f"{repository}@{_tag_digest(client, reference, named)}"


def _held(client: docker.DockerClient, reference: str) -> Any:
    try:
        return client.images.get(reference)
    except docker.errors.ImageNotFound:
        try:
            return client.images.pull(reference)
        except docker.errors.APIError as exc:
            raise EngineError(
                f"base image {reference}: not on this engine and not pulled ({exc.explanation})"
            ) from None


def _tag_digest(client: docker.DockerClient, reference: str, named: list[str]) -> str:
    """Of the digests the engine holds the image under, the one its tag names. For a multi-platform base that is
    the index, the same for every platform; the manifest of this machine's platform beside it would make an arm64
    build FROM amd64's image. One digest is the one. Of several, the registry tells: through Docker's API, else
    through Podman's (which has no such call: the one its index does not list as a platform's manifest)."""
    if len(named) == 1:
        return named[0]
    if (digest := _registry_digest(client, reference)) in named:
        return str(digest)
    if digest := _podman_index(client, reference, named):
        return digest
    raise EngineError(
        f"base image {reference}: the engine holds it under {len(named)} digests ({', '.join(named)}), and the "
        "registry could not tell which one its tag names (offline, no credentials for it, or a name without its "
        f"registry): name the base by its digest, {_repository(reference)}@sha256:..."
    )


def _registry_digest(client: docker.DockerClient, reference: str) -> str | None:
    try:
        return str(client.images.get_registry_data(reference).id)
    except (docker.errors.DockerException, requests.RequestException):  # a credential helper's failure included
        return None


def _podman_index(client: docker.DockerClient, reference: str, named: list[str]) -> str | None:
    """The one digest of `named` that the tag's index, as Podman reads it from the registry, does not list as a
    platform's manifest. (Not Podman's own `Digest`: the first one it stored the image under, which is the
    manifest's when the image was pulled by that digest before its tag.)"""
    try:
        path = client.api._url("/libpod/manifests/{0}/json", reference)
        answer = client.api._result(client.api._get(path), json=True)
    except (docker.errors.DockerException, requests.RequestException, ValueError):
        return None
    listed = answer.get("manifests") if isinstance(answer, dict) else None
    if not isinstance(listed, list):
        return None
    platforms = {entry.get("digest") for entry in listed if isinstance(entry, dict)}
    others = [digest for digest in named if digest not in platforms]
    return others[0] if len(others) == 1 else None


def _names(repository: str) -> set[str]:
    """How engines spell one repository: `debian`, `docker.io/library/debian`, `localhost/x`."""
    found = {repository, f"docker.io/{repository}", f"docker.io/library/{repository}"}
    return found | {repository.removeprefix("docker.io/").removeprefix("library/")}


def pinned(found: Bases, locked: Mapping[str, Any], lock_file: Path) -> Bases:
    """The bases as the lock pins them: each its own repository at a sha256 digest (a lock is a file in
    a repository anyone with push access edits); ConfigError naming each base it does not pin so."""
    section = locked.get("docker")
    images = section.get("images") if isinstance(section, dict) else None
    images = images if isinstance(images, dict) else {}
    problems = []
    for reference in found.references():
        value = images.get(reference)
        if value is None:
            problems.append(f"no digest for {reference}: run `cortex lock` with the same base images")
        elif not (isinstance(value, str) and re.fullmatch(re.escape(_repository(reference)) + DIGEST, value)):
            problems.append(f"{reference} is pinned to {str(value)[:120]!r}, not {_repository(reference)}@sha256:...")
    if problems:
        raise ConfigError([Diagnostic(Origin(str(lock_file)), "docker.images", message) for message in problems])
    return Bases(images[found.runtime], images[found.builder])
