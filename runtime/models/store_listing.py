"""What the model store holds: each `<sha256>.gguf` in the data folder, its size, and the catalogue presets and
Cortexfile models (by declared or pinned sha256) it is the file of."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from menlo_cortex.cortexfile import catalogue
from menlo_cortex.cortexfile.data_folder import data_dir
from menlo_cortex.cortexfile.loader import Resolved

from ..fetch.errors import ModelUnavailable
from .model_store import ModelStore

STORED = re.compile(r"[0-9a-f]{64}\.gguf")


def store_files(resolved: Resolved, environ: Mapping[str, str]) -> dict[str, Any]:
    config, data = resolved.config, data_dir(resolved.config, environ)
    folder = data / "models"
    holders: dict[str, list[str]] = {}
    for entry in catalogue.entries():
        if entry.model.sha256:
            holders.setdefault(entry.model.sha256, []).append(f"preset {entry.name}")
    store = ModelStore(config, data, resolved.path)
    for model in config.models:
        try:
            sha256 = store.pinned(model).sha256
        except ModelUnavailable:  # an unreadable lock: the model is listed under no file
            continue
        if sha256:
            holders.setdefault(sha256, []).append(f"model {model.id}")
    files = []
    for path in sorted(folder.glob("*.gguf")) if folder.is_dir() else []:
        if STORED.fullmatch(path.name) and path.is_file() and not path.is_symlink():
            files.append({"sha256": path.stem, "size": path.stat().st_size, "holds": holders.get(path.stem, [])})
    return {"folder": str(folder), "files": files}
