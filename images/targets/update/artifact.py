"""`--push REF`: the update folder as an OCI artifact (one layer per file, named by its
`org.opencontainers.image.title` annotation, as runtime/update/source.py reads it), pushed by skopeo like the OCI
image. The layout's blobs are hard links to the published files (copies across file systems)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from menlo_cortex.runtime.models.model_store import file_sha256
from menlo_cortex.runtime.update.source import MANIFEST_TYPES, TITLE

from ...artifacts import staging
from ..oci.push import push

ARTIFACT_TYPE = "application/vnd.cortex.update.v1"
EMPTY = b"{}"


def push_update(folder: Path, names: list[str], reference: str, environ: Mapping[str, str]) -> str:
    """Push the files `names` of `folder` to `reference`; the line to print."""
    tag = reference.rsplit(":", 1)[-1] if ":" in reference.rsplit("/", 1)[-1] else "latest"
    with staging(folder, "oci") as layout:  # inside the output folder: a private (0700) folder, removed after
        blobs = layout / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        layers = [_layer(folder / name, blobs) for name in names]
        config = _blob(EMPTY, blobs) | {"mediaType": "application/vnd.oci.empty.v1+json"}
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST_TYPES, "artifactType": ARTIFACT_TYPE,
                    "config": config, "layers": layers}  # fmt: skip
        entry = _blob(json.dumps(manifest, sort_keys=True).encode(), blobs)
        named = entry | {"mediaType": MANIFEST_TYPES, "annotations": {"org.opencontainers.image.ref.name": tag}}
        index = {"schemaVersion": 2, "manifests": [named]}
        (layout / "index.json").write_text(json.dumps(index, sort_keys=True), encoding="utf-8")
        (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}', encoding="utf-8")
        return push(layout, tag, reference, environ)


def _layer(path: Path, blobs: Path) -> dict[str, object]:
    digest = file_sha256(path)
    target = blobs / digest
    if not target.exists():
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
    annotations = {TITLE: path.name}
    return {"mediaType": "application/octet-stream", "digest": f"sha256:{digest}", "size": path.stat().st_size,
            "annotations": annotations}  # fmt: skip


def _blob(data: bytes, blobs: Path) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}
