"""Talk to whatever Docker-API engine DOCKER_HOST names (Docker, or Podman's API service):
connect and check its version, build untagged, tag only a finished image, push."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

import docker
import docker.errors
import requests

from .progress import BuildDisplay

MIN_API_VERSION = (1, 41)  # Docker 20.10, Podman 4
_IMAGE_ID = re.compile(r"(?:Successfully built |^)(?P<id>(?:sha256:)?[0-9a-f]{12,64})\s*$")
DISK_FULL = "no space left on device"


class EngineError(RuntimeError):
    """A build or push failed; the message names the cause and, for builds, the step."""


@dataclass(frozen=True)
class BuildRequest:
    context: IO[bytes]  # a tar of the build context
    platform: str | None = None
    network_mode: str | None = None
    no_cache: bool = False


def connect(environ: Mapping[str, str]) -> docker.DockerClient:
    """A client for DOCKER_HOST (or the default socket), checked to speak a recent enough API."""
    where = environ.get("DOCKER_HOST", "the default socket (unix:///var/run/docker.sock)")
    try:
        client = docker.DockerClient.from_env(environment=dict(environ), version="1.41", timeout=600)
        version = client.version()
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise EngineError(
            f"no container engine reachable at {where}: {_short(exc)}. Start Docker, or Podman's API "
            "service (`podman system service --time=0 unix:///run/podman/podman.sock`) and set DOCKER_HOST"
        ) from None
    _check_version(version, where)
    return client


def _check_version(version: Mapping[str, Any], where: str) -> None:
    text = str(version.get("ApiVersion", "0"))
    found = tuple(int(part) for part in re.findall(r"\d+", text)[:2])
    if found < MIN_API_VERSION:
        name = version.get("Components", [{}])[0].get("Name") or "the engine"
        wanted = ".".join(map(str, MIN_API_VERSION))
        raise EngineError(
            f"{name} {version.get('Version', '?')} at {where} speaks Docker API {text}; cortex build needs "
            f"{wanted} or newer (Docker 20.10+, Podman 4+)"
        )


def build(client: docker.DockerClient, request: BuildRequest, display: BuildDisplay) -> str:
    """Build without a tag (a failure leaves no tagged image); the new image's id."""
    try:
        stream = client.api.build(
            fileobj=request.context,
            custom_context=True,
            rm=True,
            forcerm=True,
            decode=True,
            platform=request.platform,
            network_mode=request.network_mode,
            nocache=request.no_cache,
        )
        image_id = _follow(stream, display)
    except docker.errors.APIError as exc:
        raise EngineError(_build_failure(display, str(exc.explanation or exc))) from None
    except requests.RequestException as exc:
        raise EngineError(f"lost the engine during {display.failed_step()}: {_short(exc)}") from None
    display.finish()
    if image_id is None:
        raise EngineError("the engine finished the build without naming the image it made")
    return image_id


def _follow(stream: Iterable[dict[str, Any]], display: BuildDisplay) -> str | None:
    image_id = None
    for event in stream:
        if "error" in event or "errorDetail" in event:
            detail = event.get("errorDetail") or {}
            raise EngineError(_build_failure(display, str(detail.get("message") or event.get("error"))))
        if "stream" in event:
            text = str(event["stream"])
            display.feed(text)
            image_id = _image_id(text) or image_id
        aux = event.get("aux")
        if isinstance(aux, dict) and "ID" in aux:
            image_id = str(aux["ID"])
    return image_id


def _image_id(text: str) -> str | None:
    lines = [line for line in text.splitlines() if line.strip()]
    match = _IMAGE_ID.search(lines[-1]) if lines else None
    return match["id"] if match else None


def _build_failure(display: BuildDisplay, message: str) -> str:
    message = message.strip()
    step = display.failed_step()
    cause = _cause(message, step)
    output = display.last_output()
    return f"build failed at {step}: {cause}" + (f"\nlast output of that step:\n{output}" if output else "")


def _cause(message: str, step: str) -> str:
    lowered = message.lower()
    if DISK_FULL in lowered:
        return f"the engine ran out of disk space ({message}); free space where the engine keeps images"
    if "FROM" in step and any(w in lowered for w in ("pull", "not found", "unknown", "registry", "manifest")):
        return (
            f"the base image is missing and could not be pulled ({message}); "
            "pull or load it, or pick another with --base-image"
        )
    return message


def tag(client: docker.DockerClient, image_id: str, reference: str) -> None:
    repository, _, name = reference.rpartition(":") if _has_tag(reference) else (reference, "", "latest")
    if not client.api.tag(image_id, repository, name):
        raise EngineError(f"the engine refused to tag {image_id} as {reference}")


def push(client: docker.DockerClient, reference: str, display: BuildDisplay) -> None:
    """Push with the credentials of the usual config.json ($DOCKER_CONFIG or ~/.docker)."""
    repository, _, name = reference.rpartition(":") if _has_tag(reference) else (reference, "", "latest")
    try:
        for event in client.api.push(repository, name, stream=True, decode=True):
            if "error" in event or "errorDetail" in event:
                raise EngineError(f"push of {reference} failed: {event.get('error') or event.get('errorDetail')}")
            status = event.get("status")
            if status and not event.get("progressDetail"):
                print(f"push: {status}", file=display.out, flush=True)
    except docker.errors.APIError as exc:
        raise EngineError(f"push of {reference} failed: {exc.explanation or exc}") from None


def _has_tag(reference: str) -> bool:
    return ":" in reference.rsplit("/", 1)[-1]


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 300 else text[:297] + "..."
