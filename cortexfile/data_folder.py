"""Where models live: the data folder's store, `models/<sha256>.gguf`, then the source path."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .schema import Cortexfile, Model
from .schema.models import SourceKind, source_kind


def data_dir(config: Cortexfile, environ: Mapping[str, str] | None = None) -> Path:
    return config.data.path if config.data.path is not None else default_data_dir(environ)


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where a Cortexfile without data.path keeps its models: $XDG_DATA_HOME/cortex, else ~/.local/share/cortex."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")) / ".local" / "share")
    return Path(base).expanduser() / "cortex"


def sync_dir(data: Path) -> Path:
    """`cortex sync`'s folder (mirror, keyring, state.json): beside the data folder, not in it, so that a sync
    service running as root never writes below a folder the server's user owns (it could plant a link)."""
    return data.with_name(f"{data.name}-sync")


def store_path(data: Path, sha256: str) -> Path:
    return data / "models" / f"{sha256}.gguf"


def local_candidates(model: Model, data: Path) -> list[Path]:
    """Where a model may already be, in lookup order."""
    found = [store_path(data, model.sha256)] if model.sha256 else []
    if source_kind(model.source) is SourceKind.local:
        found.append(Path(model.source))
    return found


def find_local(model: Model, data: Path) -> Path | None:
    return next((p for p in local_candidates(model, data) if p.is_file()), None)
