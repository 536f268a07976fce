"""`Cortexfile.lock`: every input of the image, resolved and hashed (TOML, written with tomli-w).

`cortex lock` writes it beside the Cortexfile; `cortex build --format oci --locked` compares what the
build would use with it and refuses, naming each difference, before anything is written.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import tomli_w
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin

from .cache import Facts

LOCK_NAME = "Cortexfile.lock"
VERSION = 1
HEADER = "# Written by `cortex lock`; `cortex build --locked` fails when an input no longer matches.\n"
# How the entries of each list are told apart.
KEYS = {"models": "id", "packages": "name", "wheels": "name"}


def lock_path(cortexfile: Path) -> Path:
    return cortexfile.with_name(LOCK_NAME)


def contents(models: list[dict[str, Any]], platforms: Mapping[str, Facts]) -> dict[str, Any]:
    """The lock of a build: its models, and per architecture the Debian root, its packages and the wheels."""
    return {
        "version": VERSION,
        "models": sorted(models, key=lambda model: model["id"]),
        "platforms": {
            architecture: {
                "debian": facts["debian"],
                "llama_cpp_python": facts["llama_cpp_python"],
                "packages": facts["packages"],
                "wheels": facts["wheels"],
            }
            for architecture, facts in sorted(platforms.items())
        },
    }


def write(path: Path, lock: dict[str, Any]) -> None:
    """Written under a new name in the same folder (never through a link someone left there), then renamed."""
    descriptor, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(HEADER + tomli_w.dumps(lock))
        os.chmod(partial, 0o644)
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)


def check(path: Path, lock: dict[str, Any]) -> None:
    """ConfigError listing every input that differs from the lock at `path` (or its absence)."""
    origin = Origin(str(path))
    try:
        locked = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([Diagnostic(origin, "", "no lock file: run `cortex lock` first")]) from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([Diagnostic(origin, "", f"unreadable lock file ({type(exc).__name__})")]) from None
    drift = [Diagnostic(origin, key, message) for key, message in differences(locked, lock, "")]
    if drift:
        raise ConfigError(drift)


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
        yield from differences(_by(locked, field), _by(now, field), where)
    elif locked != now:
        yield where, f"locked {_short(locked)}, now {_short(now)}"


def _by(entries: list[Any], field: str) -> dict[str, Any]:
    return {str(entry.get(field)): entry for entry in entries if isinstance(entry, dict)}


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
