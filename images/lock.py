"""`Cortexfile.lock`: every input of the images, resolved and hashed (TOML, written with tomli-w).

`cortex lock` writes it beside the Cortexfile: the models, and for each format it is asked for, that
format's inputs (oci: per architecture the Debian root's packages and the wheels; docker: the base
images by digest). `cortex build --locked` compares what the build would use with it and refuses,
naming each difference, before any output is written; the docker target builds FROM the digests.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import tomli_w
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.runtime.ops.durable import write_atomically

from .sbom import public_source

LOCK_NAME = "Cortexfile.lock"
VERSION = 1
HEADER = "# Written by `cortex lock`; `cortex build --locked` fails when an input no longer matches.\n"
# How the entries of each list are told apart.
KEYS = {"models": "id", "packages": "name", "wheels": "name"}


def lock_path(cortexfile: Path) -> Path:
    return cortexfile.with_name(LOCK_NAME)


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


def platforms(facts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The oci section: per architecture the Debian root, its packages and the wheels."""
    keys = ("debian", "llama_cpp_python", "packages", "wheels")
    return {"platforms": {arch: {key: found[key] for key in keys} for arch, found in sorted(facts.items())}}


def write(path: Path, lock: dict[str, Any]) -> None:
    """Written under a new name in the same folder (never through a link someone left there), then renamed."""
    write_atomically(path, HEADER + tomli_w.dumps(lock))


def merged(path: Path, lock: dict[str, Any]) -> dict[str, Any]:
    """`lock` over the sections of the lock at `path` that this run did not compute (another format's)."""
    try:
        kept = read(path)
    except ConfigError:
        kept = {}
    return {**kept, **lock}


def read(path: Path) -> dict[str, Any]:
    """The lock at `path`; ConfigError when there is none or it cannot be read."""
    origin = Origin(str(path))
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([Diagnostic(origin, "", "no lock file: run `cortex lock` first")]) from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([Diagnostic(origin, "", f"unreadable lock file ({type(exc).__name__})")]) from None


def check(path: Path, lock: dict[str, Any]) -> dict[str, Any]:
    """The lock at `path`, when every section `lock` holds matches it; else ConfigError listing every
    difference (sections of other formats are not compared)."""
    locked = read(path)
    found = list(differences({key: locked[key] for key in lock if key in locked}, lock, ""))
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
