"""Layers already written, kept by a key of everything that went into them (root spec, wheels, model
digest, epoch): an edit of the Cortexfile alone re-uses every layer but the one that holds it.

Under ~/.cache/cortex/oci: blobs/sha256/<digest> and layers/<key>.json (the blob's descriptor and what
the SBOM and the lock need to know of its content). A blob is renamed into place when complete, and
its entry written after it: an interrupted build leaves at most an unreferenced temporary file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ...runtime_wheels import cache_root
from .layers import Blob

Facts = dict[str, Any]


@dataclass(frozen=True)
class Cached:
    blob: Blob
    path: Path
    facts: Facts  # what the layer holds, for the SBOM and the lock


def default_folder() -> Path:
    return cache_root() / "oci"


@dataclass(frozen=True)
class LayerCache:
    folder: Path

    def layer(self, key: str, write: Callable[[Path], tuple[Blob, Facts]]) -> Cached:
        """The layer stored under `key`, else the one `write(path)` writes now (then stored)."""
        found = self._lookup(key)
        if found is not None:
            return found
        scratch = self.folder / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        partial = scratch / f"{key}.{os.getpid()}"
        try:
            blob, facts = write(partial)
            path = self.folder / "blobs" / "sha256" / blob.hex
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        entry = self.folder / "layers" / f"{key}.json"
        entry.parent.mkdir(parents=True, exist_ok=True)
        staged = entry.with_name(f"{entry.name}.{os.getpid()}")
        stored = {"blob": asdict(blob), "facts": facts, "mtime_ns": path.stat().st_mtime_ns}
        staged.write_text(json.dumps(stored, sort_keys=True), encoding="utf-8")
        staged.replace(entry)
        return Cached(blob, path, facts)

    def _lookup(self, key: str) -> Cached | None:
        entry = self.folder / "layers" / f"{key}.json"
        try:
            stored = json.loads(entry.read_text(encoding="utf-8"))
            blob = Blob(**stored["blob"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        path = self.folder / "blobs" / "sha256" / blob.hex
        try:
            status = path.stat()
        except OSError:
            return None
        # Outputs hard-link these blobs: one edited in place (a new time) is written again, never trusted.
        if status.st_size != blob.size or status.st_mtime_ns != stored.get("mtime_ns"):
            return None
        return Cached(blob, path, stored["facts"])
