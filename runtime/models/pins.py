"""Pinned downloads: a remote model without a declared sha256 is hashed on its first download, and the hash
is kept in Cortexfile.lock's `models` (as `go.sum` keeps a module's); every later download and build checks it.

An entry pins a model by its id and its public source (a URL without credentials, as the lock records it),
so a changed source is a new model, downloaded and pinned again.
"""

from __future__ import annotations

import logging
import re
import threading
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from menlo_cortex.cortexfile.schema import Model

from ..fetch.errors import ModelUnavailable
from ..ops.durable import write_atomically

log = logging.getLogger("cortex.models")

LOCK_NAME = "Cortexfile.lock"
LOCK_HEADER = (
    "# Written by `cortex lock` and by first downloads; `cortex build --locked` fails when an input differs.\n"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def lock_path(cortexfile: Path) -> Path:
    return cortexfile.with_name(LOCK_NAME)


def public_source(source: str, base: Path) -> str:
    """A model's source as a Cortexfile wrote it (a file beside it relative to it, as in any checkout);
    an http(s) URL without its user, password, query or fragment (where signed URLs keep their tokens)."""
    parts, base = urlsplit(source), base.absolute()
    if not parts.scheme and Path(source).is_relative_to(base):
        return Path(source).relative_to(base).as_posix()
    if parts.scheme not in {"http", "https"}:
        return source
    host = parts.hostname or ""
    return urlunsplit((parts.scheme, host if parts.port is None else f"{host}:{parts.port}", parts.path, "", ""))


def write_lock(path: Path, lock: dict[str, Any]) -> None:
    """Written under a new name in the same folder (never through a link someone left there), then renamed."""
    import tomli_w  # only a first download or `cortex lock` writes the lock

    write_atomically(path, LOCK_HEADER + tomli_w.dumps(lock))


class Pins:
    """The pins of one Cortexfile: read from its lock, recorded there after a first download.

    `lock` None: pins live in this process only. A lock that cannot be written (a read-only /etc) keeps the
    pin for this process and says so once: the next start downloads and pins again.
    """

    def __init__(self, lock: Path | None) -> None:
        self.lock = lock
        self._recorded: dict[tuple[str, str], str] = {}
        self._write = threading.Lock()

    def get(self, model: Model) -> str | None:
        key = self._key(model)
        if key in self._recorded:
            return self._recorded[key]
        entry = _entries(self._read()).get(key)
        return None if entry is None else _checked_sha256(entry, self.lock, model)

    def record(self, model: Model, sha256: str, size: int) -> None:
        key = self._key(model)
        self._recorded[key] = sha256
        if self.lock is None:
            return
        with self._write:
            try:
                lock = self._read()
                entries = _entries(lock)
                entries[key] = {"id": model.id, "source": key[1], "sha256": sha256, "size": size}
                models = sorted(entries.values(), key=lambda entry: (str(entry["id"]), str(entry["source"])))
                write_lock(self.lock, {"version": 1, **lock, "models": models})
            except OSError as exc:
                log.warning("model `%s` pinned to sha256 %s for this run only: cannot write %s (%s)",
                            model.id, sha256, self.lock, exc.strerror)  # fmt: skip
                return
        log.info("model `%s` pinned: sha256 %s recorded in %s", model.id, sha256, self.lock)

    def _key(self, model: Model) -> tuple[str, str]:
        base = self.lock.parent if self.lock is not None else Path.cwd()
        return model.id, public_source(model.source, base)

    def _read(self) -> dict[str, Any]:
        if self.lock is None:
            return {}
        try:
            return tomllib.loads(self.lock.read_text(encoding="utf-8"))
        except (FileNotFoundError, NotADirectoryError):  # no lock yet
            return {}
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ModelUnavailable(f"{self.lock}: unreadable lock file ({type(exc).__name__})") from None


def _entries(lock: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The lock's model entries by (id, source); entries of another shape are kept out of the lookup."""
    models = lock.get("models")
    found = {}
    for entry in models if isinstance(models, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and isinstance(entry.get("source"), str):
            found[(entry["id"], entry["source"])] = entry
    return found


def _checked_sha256(entry: dict[str, Any], lock: Path | None, model: Model) -> str:
    sha256 = entry.get("sha256")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ModelUnavailable(f"{lock}: model `{model.id}`: the pinned sha256 is not 64 lowercase hex characters")
    return sha256
