"""Download one model file into the store: space checked first, hashed while written, renamed when verified."""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..models.errors import DownloadFailed, ModelInvalid
from .http_get import HttpFailure, http_get
from .netsettings import NetSettings, redact
from .progress import Progress, human_bytes

GGUF_MAGIC = b"GGUF"
CHUNK_BYTES = 1 << 20


def read_magic(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(len(GGUF_MAGIC))


@dataclass(frozen=True)
class RemoteFile:
    model_id: str
    url: str
    sha256: str


def download_model(wanted: RemoteFile, store_dir: Path, net: NetSettings, progress: Progress | None = None) -> Path:
    """Return `<store_dir>/<sha256>.gguf`, downloading it unless it is already there."""
    store_dir.mkdir(parents=True, exist_ok=True)
    final = store_dir / f"{wanted.sha256}.gguf"
    with _exclusive(store_dir / f".{wanted.sha256}.lock"):
        if final.is_file():  # another process finished it while this one waited for the lock
            return final
        partial = store_dir / f".{wanted.sha256}.partial"
        try:
            _download_verified(wanted, partial, net, progress)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        _fsync_dir(store_dir)
    return final


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialize downloads of one sha256 across threads and processes; the kernel drops the lock if we die."""
    descriptor = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _download_verified(wanted: RemoteFile, partial: Path, net: NetSettings, progress: Progress | None) -> None:
    model_id, url, sha256 = wanted.model_id, wanted.url, wanted.sha256
    try:
        actual = _stream_to(model_id, url, partial, net, progress)
    except (OSError, http.client.HTTPException, HttpFailure) as exc:
        raise DownloadFailed(f"model `{model_id}`: downloading {redact(url)} failed: {_cause(exc)}") from None
    if read_magic(partial) != GGUF_MAGIC:
        raise ModelInvalid(f"model `{model_id}`: {redact(url)} is not a GGUF file (it does not start with `GGUF`)")
    if actual != sha256:
        raise ModelInvalid(f"model `{model_id}`: {redact(url)} has sha256 {actual}, expected {sha256}")


def _stream_to(model_id: str, url: str, partial: Path, net: NetSettings, progress: Progress | None) -> str:
    """Write the body to `partial`, fsynced; return its sha256."""
    with http_get(url, net) as response:
        total = _content_length(response)
        _check_free_space(partial.parent, total)
        digest, done = hashlib.sha256(), 0
        if progress:
            progress.begin(model_id, total)
        ok = False
        try:
            with partial.open("wb") as out:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress.update(done)
                out.flush()
                os.fsync(out.fileno())
            if total is not None and done != total:
                raise HttpFailure(f"the body ended after {done} of {total} bytes")
            ok = True
        finally:
            if progress:
                progress.end(ok)
    return digest.hexdigest()


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.getheader("Content-Length")
    return int(value) if value and value.isdigit() else None


def _check_free_space(folder: Path, needed: int | None) -> None:
    if needed is None:
        return
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise HttpFailure(
            f"not enough disk space in {folder}: the file needs {human_bytes(needed)}, {human_bytes(free)} free"
        )


def _cause(exc: BaseException) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        return f"the connection closed after {len(exc.partial)} bytes, before the end of the file"
    if isinstance(exc, OSError) and exc.strerror:  # without the "[Errno N]" prefix
        return exc.strerror
    return str(exc) or type(exc).__name__


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
