"""The JSON documents of an image: its config (what the engine runs), its manifest (config and layers
by digest), the index over every platform, and the SBOM's referrer. Canonical JSON (sorted keys, no
spaces), so the same content is always the same digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ...image_plan import BuildPlan
from .layers import Blob
from .rootfs import SERVICE_UID

CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
PATH = "/opt/cortex/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SECOND_NS = 1_000_000_000
VARIANTS = {"arm64": "v8"}


@dataclass(frozen=True)
class Document:
    """A JSON blob of the image, with its bytes."""

    data: bytes
    media_type: str

    @property
    def blob(self) -> Blob:
        return Blob(f"sha256:{hashlib.sha256(self.data).hexdigest()}", len(self.data), self.media_type)


def canonical(value: dict[str, Any], media_type: str) -> Document:
    return Document(json.dumps(value, sort_keys=True, separators=(",", ":")).encode(), media_type)


def platform(architecture: str) -> dict[str, str]:
    found = {"architecture": architecture, "os": "linux"}
    if architecture in VARIANTS:
        found["variant"] = VARIANTS[architecture]
    return found


def image_config(plan: BuildPlan, layers: list[tuple[Blob, str]], created: str) -> Document:
    """What the engine runs: the Dockerfile path's entrypoint, user, port, labels and health check.
    `Healthcheck` is Docker's key: OCI has none, and engines that read it (Docker, Podman) use it."""
    config = {
        "User": f"{SERVICE_UID}:{SERVICE_UID}",
        "Env": [f"PATH={PATH}", f"SSL_CERT_FILE={CA_BUNDLE}", f"HOME={plan.data_dir}"],
        "Entrypoint": list(plan.entrypoint),
        "ExposedPorts": {f"{plan.port}/tcp": {}},
        "WorkingDir": plan.data_dir,
        "Labels": dict(plan.labels),
        "StopSignal": "SIGTERM",
        "Healthcheck": {
            "Test": ["CMD", *plan.healthcheck],
            "Interval": 30 * SECOND_NS,
            "Timeout": 10 * SECOND_NS,
            "StartPeriod": 120 * SECOND_NS,
            "Retries": 3,
        },
    }
    return canonical(
        {
            **platform(plan.architecture),
            "created": created,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [blob.diff_id for blob, _ in layers]},
            "history": [{"created": created, "created_by": f"cortex build --format oci: {what}"} for _, what in layers],
        },
        CONFIG,
    )


def image_manifest(config: Blob, layers: list[Blob], created: str) -> Document:
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor() for layer in layers],
            "annotations": {"org.opencontainers.image.created": created},
        },
        MANIFEST,
    )


def image_index(manifests: list[tuple[Blob, str]]) -> Document:
    """Every platform's manifest, by architecture."""
    entries = [{**blob.descriptor(), "platform": platform(architecture)} for blob, architecture in manifests]
    return canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}, INDEX)


def empty_config() -> Document:
    return Document(b"{}", EMPTY)


def referrer(subject: Blob, artifact: Blob, artifact_type: str) -> Document:
    """An OCI 1.1 artifact manifest that refers to `subject` (the SBOM of an image)."""
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": artifact_type,
            "config": empty_config().blob.descriptor(),
            "layers": [artifact.descriptor()],
            "subject": subject.descriptor(),
        },
        MANIFEST,
    )
