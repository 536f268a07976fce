"""`Cortexfile.lock`: every input of the images, resolved and hashed (TOML, written with tomli-w).

`cortex lock` writes it beside the Cortexfile: the models, and for each format it is asked for, that
format's inputs (oci: per architecture the Debian root's packages and the wheels; docker: the base
images by digest). `cortex build --locked` compares what the build would use with it and refuses,
naming each difference, before any output is written; the docker target builds FROM the digests.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.runtime.models.pins import LOCK_NAME, lock_path, public_source
from menlo_cortex.runtime.models.pins import write_lock as write

__all__ = ["LOCK_NAME", "lock_path", "write"]  # the lock's file, shared with the runtime's pinned downloads

VERSION = 1
# How the entries of each list are told apart.
KEYS = {"models": "id", "packages": "name", "wheels": "name"}


def contents(models: list[dict[str, Any]], sections: Mapping[str, Any]) -> dict[str, Any]:
    """The lock: its version, the models, and each format's own sections."""
    return {"version": VERSION, "models": sorted(models, key=lambda model: model["id"]), **sections}


def models(found: Mapping[str, tuple[str, Path]], sources: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each baked model: its source as written, sha256 and size."""
    return [
        {"id": model_id, "source": sources[model_id], "sha256": sha, "size": path.stat().st_size}
        for model_id, (sha, path) in found.items()
    ]


def model_sources(resolved: Resolved) -> dict[str, str]:
    """Each model's source as recorded: as written, a URL without its credentials (sbom.public_source)."""
    base = resolved.path.parent
    return {model.id: public_source(model.source, base) for model in resolved.config.models}


def declared(resolved: Resolved) -> list[str]:
    """The ids of the Cortexfile's models: the lock keeps their pins even when a build bakes none of them."""
    return [model.id for model in resolved.config.models]


def platforms(facts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The oci section: per architecture the Debian root, its packages and the wheels."""
    keys = ("debian", "llama_cpp_python", "packages", "wheels")
    return {"platforms": {arch: {key: found[key] for key in keys} for arch, found in sorted(facts.items())}}


def merged(path: Path, lock: dict[str, Any], declared: Iterable[str]) -> dict[str, Any]:
    """`lock` over the sections of the lock at `path` that this run did not compute (another format's), and
    over its pins of `declared` models that this run did not bake (first downloads: runtime/models/pins.py)."""
    try:
        kept = read(path)
    except ConfigError:
        kept = {}
    models = lock.get("models", [])
    return {**kept, **lock, "models": sorted(models + _unbaked(kept, models, declared), key=lambda m: m["id"])}


def _unbaked(locked: dict[str, Any], now: list[dict[str, Any]], declared: Iterable[str]) -> list[dict[str, Any]]:
    """The locked pins of declared models that `now` (a build's baked models) leaves out."""
    entries = locked.get("models")
    wanted = set(declared) - {model["id"] for model in now}
    if not isinstance(entries, list):
        return []
    return [entry for entry in entries if isinstance(entry, dict) and _id(entry) in wanted]


def _id(entry: dict[str, Any]) -> str | None:
    return entry["id"] if isinstance(entry.get("id"), str) else None


def read(path: Path) -> dict[str, Any]:
    """The lock at `path`; ConfigError when there is none or it cannot be read."""
    origin = Origin(str(path))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([Diagnostic(origin, "", "no lock file: run `cortex lock` first")]) from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([Diagnostic(origin, "", f"unreadable lock file ({type(exc).__name__})")]) from None


def check(path: Path, lock: dict[str, Any], declared: Iterable[str]) -> dict[str, Any]:
    """The lock at `path`, when every section `lock` holds matches it; else ConfigError listing every
    difference (sections of other formats, and pins of `declared` models this build does not bake, are not
    compared)."""
    locked = read(path)
    compared = {key: locked[key] for key in lock if key in locked}
    if isinstance(compared.get("models"), list):
        unbaked = _unbaked(locked, lock.get("models", []), declared)
        compared["models"] = [entry for entry in compared["models"] if entry not in unbaked]
    found = list(differences(compared, lock, ""))
    if found:
        raise ConfigError([Diagnostic(Origin(str(path)), key, message) for key, message in found])
    return locked


def differences(locked: Any, now: Any, where: str) -> Iterator[tuple[str, str]]:
    """(dotted key, what changed) for every value of `now` that `locked` holds otherwise."""
    if isinstance(locked, dict) and isinstance(now, dict):
        for key in sorted(set(locked) | set(now)):
            inner = f"{where}.{key}" if where else key
            if key not in now:
                yield inner, "locked, no longer an input"
            elif key not in locked:
                yield inner, "a new input, not in the lock"
            else:
                yield from differences(locked[key], now[key], inner)
    elif isinstance(locked, list) and isinstance(now, list) and where.rpartition(".")[2] in KEYS:
        field = KEYS[where.rpartition(".")[2]]
        by_key = _by(locked, field)
        if len(by_key) != len(locked):
            yield where, f"entries that are not tables, or with the same {field} twice"
        yield from differences(by_key, _by(now, field), where)
    elif locked != now:
        yield where, f"locked {_short(locked)}, now {_short(now)}"


def _by(entries: list[Any], field: str) -> dict[str, Any]:
    return {str(entry.get(field)): entry for entry in entries if isinstance(entry, dict)}


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
