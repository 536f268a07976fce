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
    if re.search(DIGEST + "$", reference):  # already pinned: kept as named
        return f"{repository}@{reference.rsplit('@', 1)[1]}"
    named = sorted(
        {d.split("@")[1] for d in image.attrs.get("RepoDigests") or [] if d.split("@")[0] in _names(repository)}
    )
    if not named:
        raise EngineError(f"base image {reference}: the engine knows no digest for it (RepoDigests is empty)")
    return f"{repository}@{_pulled_by(client, reference, named)}"


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


def _pulled_by(client: docker.DockerClient, reference: str, named: list[str]) -> str:
    """The digest the tag named when the engine pulled it. For a multi-platform base that is its index, the same
    for every platform; the manifest of this machine's platform beside it would make an arm64 build FROM amd64's
    image. Docker lists only the digest it pulled by; Podman lists every manifest it holds, and its own API says
    which one it pulled by."""
    if len(named) == 1:
        return named[0]
    podman = _podman_digest(client, reference)
    if podman in named:
        return podman
    raise EngineError(
        f"base image {reference}: the engine holds it under {len(named)} digests ({', '.join(named)}) and does not "
        "say which one its tag named: remove the image and pull it again, or name the base by digest"
    )


def _podman_digest(client: docker.DockerClient, reference: str) -> str | None:
    """Podman's record of the digest it pulled `reference` by (its libpod API); None from another engine."""
    try:
        answer = client.api._result(client.api._get(client.api._url("/libpod/images/{0}/json", reference)), json=True)
    except (docker.errors.APIError, ValueError):
        return None
    digest = answer.get("Digest") if isinstance(answer, dict) else None
    return digest if isinstance(digest, str) else None


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
