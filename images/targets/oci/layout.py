"""Where an image's blobs go: an OCI image layout folder (what skopeo and registries read), and a tar
archive that both `podman load` and `docker load` accept: the same layout plus Docker's manifest.json,
as `docker save` writes since Docker 25.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...artifacts import link_or_copy
from ...reproducible import add_bytes, add_file, add_folder
from .layers import Blob
from .manifest import INDEX, Document, canonical

LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'
BLOBS = "blobs/sha256"


@dataclass
class Blobs:
    """The content of an image (or several), by digest: files in the layer cache, or JSON documents."""

    files: dict[str, Path | bytes] = field(default_factory=dict)

    def add_file(self, blob: Blob, path: Path) -> Blob:
        self.files[blob.hex] = path
        return blob

    def add(self, document: Document) -> Blob:
        blob = document.blob
        self.files[blob.hex] = document.data
        return blob

    def subset(self, hexes: set[str]) -> Blobs:
        return Blobs({key: value for key, value in self.files.items() if key in hexes})


def index_file(entries: list[dict[str, Any]]) -> bytes:
    return canonical({"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}, INDEX).data


def write_layout(folder: Path, blobs: Blobs, entries: list[dict[str, Any]]) -> None:
    """An OCI image layout in `folder` (new): large blobs hard-linked from the cache where possible."""
    store = folder / BLOBS
    store.mkdir(parents=True)
    for hex_digest, content in sorted(blobs.files.items()):
        if isinstance(content, bytes):
            (store / hex_digest).write_bytes(content)
        else:
            link_or_copy(content, store / hex_digest)
    (folder / "oci-layout").write_bytes(LAYOUT_VERSION)
    (folder / "index.json").write_bytes(index_file(entries))


def write_archive(path: Path, blobs: Blobs, entries: list[dict[str, Any]], docker: list[dict[str, Any]]) -> None:
    """One tar: `index.json`, `oci-layout`, the blobs, and Docker's `manifest.json`; sorted, fixed times."""
    members: dict[str, Path | bytes] = {f"{BLOBS}/{key}": value for key, value in blobs.files.items()}
    members |= {
        "index.json": index_file(entries),
        "oci-layout": LAYOUT_VERSION,
        "manifest.json": json.dumps(docker, sort_keys=True, separators=(",", ":")).encode(),
    }
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for folder in ("blobs", BLOBS):
            add_folder(tar, folder, 0)
        for name, content in sorted(members.items()):
            if isinstance(content, bytes):
                add_bytes(tar, name, content, 0)
            else:
                add_file(tar, name, content, 0)


def docker_entry(config: Blob, layers: list[Blob], tags: list[str]) -> dict[str, Any]:
    return {"Config": f"{BLOBS}/{config.hex}", "RepoTags": tags, "Layers": [f"{BLOBS}/{b.hex}" for b in layers]}


def descriptor(blob: Blob, annotations: Mapping[str, str] | None = None, **more: Any) -> dict[str, Any]:
    entry = {**blob.descriptor(), **more}
    if annotations:
        entry["annotations"] = dict(annotations)
    return entry
