"""Pinned downloads: a remote model without a declared sha256 is hashed on its first download, and the hash
is kept in Cortexfile.lock's `models` (as `go.sum` keeps a module's); every later download and build checks it.

An entry pins a model by its id and its public source (a URL without credentials, query or fragment, as the
lock records it), so a changed source is a new model, downloaded and pinned again. A source that changes only
in its query keeps its pin, so a different file there is refused: remove the entry to pin it anew.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from menlo_cortex.cortexfile.schema import Model

from ..fetch.errors import ModelInvalid, ModelUnavailable
from ..ops.durable import write_atomically

log = logging.getLogger("cortex.models")

LOCK_NAME = "Cortexfile.lock"
LOCAL_PINS = "pins.toml"
MAX_SIZE = 1 << 42
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
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def write_lock(path: Path, lock: dict[str, Any]) -> None:
    """Written under a new name in the same folder (never through a link someone left there), then renamed."""
    import tomli_w  # only a first download or `cortex lock` writes the lock

    write_atomically(path, LOCK_HEADER + tomli_w.dumps(lock))


class Pin(NamedTuple):
    sha256: str
    size: int | None  # bytes, when recorded: a download that grows past it is cut off
    where: str = ""  # the file that holds it


class Pins:
    """The pins of one Cortexfile: its lock's entries, then this device's own record in the data folder
    (`models/pins.toml`), where a pin goes when the lock cannot be written (a service's read-only /etc).

    One entry per model id, as in the lock; it pins the model while its source stays the same. Recording
    re-reads the file under a lock of its folder, so processes pinning at once never lose or silently move a
    pin: a different hash for the same source is an error.
    """

    def __init__(self, lock: Path | None, local: Path | None = None) -> None:
        self.lock = lock
        self.local = local
        self._recorded: dict[str, tuple[str, Pin]] = {}  # id -> (source, pin): this process's own

    @classmethod
    def of(cls, cortexfile: Path, data: Path) -> Pins:
        return cls(lock_path(cortexfile), data / "models" / LOCAL_PINS)

    def get(self, model: Model) -> Pin | None:
        source = self._source(model)
        known = self._recorded.get(model.id)
        if known is not None and known[0] == source:
            return known[1]
        for path in (self.lock, self.local):
            pin = _pin_in(_read(path), model.id, source, path)
            if pin is not None:
                return pin
        return None

    def record(self, model: Model, pin: Pin) -> None:
        """Record the pin of a first download, in the first pin file that can be written. ModelInvalid when
        another process pinned the same source to another hash meanwhile."""
        source = self._source(model)
        self._recorded[model.id] = (source, pin)
        for path in (self.lock, self.local):
            if path is None:
                continue
            try:
                _record_in(path, model, source, pin)
            except OSError as exc:
                log.info("model `%s`: cannot record its pin in %s (%s)", model.id, path, exc.strerror)
                continue
            log.info("model `%s` pinned: sha256 %s recorded in %s", model.id, pin.sha256, path)
            return
        log.warning("model `%s` pinned to sha256 %s for this run only: no pin file could be written", model.id,
                    pin.sha256)  # fmt: skip

    def _source(self, model: Model) -> str:
        return public_source(model.source, self.lock.parent if self.lock is not None else Path.cwd())


def _record_in(path: Path, model: Model, source: str, pin: Pin) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_locked(path.parent):
        found = _read(path)
        held = _pin_in(found, model.id, source, path)
        if held is not None and held.sha256 != pin.sha256:
            raise ModelInvalid(f"model `{model.id}`: a download got sha256 {pin.sha256}, but {path} pinned "
                               f"{held.sha256} meanwhile: the source changed while it was downloaded")  # fmt: skip
        entry = {"id": model.id, "source": source, "sha256": pin.sha256, **({"size": pin.size} if pin.size else {})}
        others = [e for e in _entries(found) if e.get("id") != model.id]
        write_lock(path, {"version": 1, **found, "models": sorted([*others, entry], key=lambda e: str(e["id"]))})


@contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    """Serialise the read-change-write of a pin file across processes (flock on its folder: the file itself
    is replaced by a rename, so its own lock would be on the old file)."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _read(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):  # no pins yet
        return {}
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ModelUnavailable(f"{path}: unreadable pin file ({type(exc).__name__})") from None


def _entries(pins: dict[str, Any]) -> list[dict[str, Any]]:
    models = pins.get("models")
    return [entry for entry in models if isinstance(entry, dict)] if isinstance(models, list) else []


def _pin_in(pins: dict[str, Any], model_id: str, source: str, path: Path | None) -> Pin | None:
    """The pin of `model_id` while its source is `source`; a changed source pins nothing (it is a new model)."""
    entry = next((e for e in _entries(pins) if e.get("id") == model_id), None)
    if entry is None or entry.get("source") != source:
        return None
    sha256, size = entry.get("sha256"), entry.get("size")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ModelUnavailable(f"{path}: model `{model_id}`: the pinned sha256 is not 64 lowercase hex characters")
    if size is not None and (type(size) is not int or not 0 < size < MAX_SIZE):
        raise ModelUnavailable(f"{path}: model `{model_id}`: the pinned size is not a whole number of bytes")
    return Pin(sha256, size, str(path))
