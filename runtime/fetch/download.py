"""Download one model file into the store: space checked first, hashed while written, renamed when verified.

An interrupted download keeps its `.partial` file and the next attempt asks for the rest (HTTP Range);
the whole file's sha256 is checked either way, and a file that fails it is deleted. A file whose sha256 is not
known yet (a first download, which pins it: models/pins.py) starts over each time and is stored under the
hash it turns out to have. A server that drips (less than MIN_WINDOW_BYTES in a WINDOW_S window) is given up
on, so every download has a deadline that grows with its size; a `Stop` ends downloads at once (shutdown).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from urllib3.exceptions import HTTPError

from ..ops.durable import fsync_dir
from .errors import DownloadFailed, ModelInvalid
from .http_get import HttpFailure, Response, failure_reason, http_get
from .netsettings import NetSettings, redact
from .progress import Progress, human_bytes

GGUF_MAGIC = b"GGUF"
_DIGITS = re.compile(r"[0-9]{1,20}")
CHUNK_BYTES = 1 << 20
WINDOW_S = 60.0
MIN_WINDOW_BYTES = 64 << 10
SPACE_CHECK_BYTES = 64 << 20  # how often free space is looked at again while writing
FREE_MARGIN_BYTES = 256 << 20  # a download never leaves less free than this (a body of unknown size)


def read_magic(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(len(GGUF_MAGIC))


@dataclass(frozen=True)
class RemoteFile:
    model_id: str
    url: str
    sha256: str | None  # None: not pinned yet, stored under the sha256 it has
    kind: str = "model"  # what messages call it: a model, an update's file
    size: int | None = None  # its size when known (a signed manifest's): a server that sends more is cut off
    expected_from: str = ""  # where the expected sha256 comes from, for the message when it differs

    @property
    def named(self) -> str:
        return f"{self.kind} `{self.model_id}`"


class DownloadStopped(DownloadFailed):
    """The process is stopping: the download ended early, its partial file kept for next time."""


class Stop:
    """Ends running downloads from any thread: the read in progress is interrupted, not waited for."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._reading: set[Response] = set()

    def set(self) -> None:
        self._event.set()
        with self._lock:
            for response in self._reading:
                response.shutdown()

    def check(self, model_id: str) -> None:
        if self._event.is_set():
            raise DownloadStopped(f"model `{model_id}`: download stopped (the server is shutting down)")

    @contextmanager
    def watching(self, response: Response) -> Iterator[None]:
        """`set` interrupts this response's reads from now on; already set (between the headers and here), now."""
        with self._lock:
            self._reading.add(response)
            if self._event.is_set():  # set() sets the event before it takes the lock: one of the two sees the other
                response.shutdown()
        try:
            yield
        finally:
            with self._lock:
                self._reading.discard(response)


def download_model(
    wanted: RemoteFile, store_dir: Path, net: NetSettings, progress: Progress | None = None, stop: Stop | None = None
) -> Path:
    """Return `<store_dir>/<sha256>.gguf`, downloading it (or the rest of it) unless it is already there."""
    return download_file(wanted, store_dir, ".gguf", net, progress=progress, stop=stop, magic=GGUF_MAGIC)


def download_file(
    wanted: RemoteFile,
    store_dir: Path,
    suffix: str,
    net: NetSettings,
    *,
    progress: Progress | None = None,
    stop: Stop | None = None,
    magic: bytes | None = None,
) -> Path:
    """Return `<store_dir>/<sha256><suffix>`, downloading it (or the rest of it) unless it is already there;
    `magic`: what the file must start with."""
    stop = stop or Stop()
    store_dir.mkdir(parents=True, exist_ok=True)
    name = wanted.sha256 or f"unpinned-{hashlib.sha256(wanted.url.encode()).hexdigest()}"
    with _exclusive(store_dir / f".{name}.lock"):
        if wanted.sha256 and (store_dir / f"{name}{suffix}").is_file():  # another process finished it meanwhile
            return store_dir / f"{name}{suffix}"
        partial = store_dir / f".{name}.partial"
        if wanted.sha256 is None:  # what the server has may have changed since: a resume could splice two files
            partial.unlink(missing_ok=True)
        final = store_dir / f"{_download_verified(wanted, partial, net, progress, stop, magic=magic)}{suffix}"
        os.replace(partial, final)
        fsync_dir(store_dir)
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


def _download_verified(
    wanted: RemoteFile, partial: Path, net: NetSettings, progress: Progress | None, stop: Stop, *, magic: bytes | None
) -> str:
    """The partial file's sha256, once it is whole and what was expected."""
    model_id, url, sha256, named = wanted.model_id, wanted.url, wanted.sha256, wanted.named
    try:
        actual = _stream_to(wanted, partial, net, progress, stop)
    except DownloadStopped:
        raise
    except (OSError, HTTPError, HttpFailure) as exc:  # the partial file stays: the next attempt resumes
        stop.check(model_id)  # a read cut short by a stop raises too: say why it really ended
        if isinstance(exc, NoSpace) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
            partial.unlink(missing_ok=True)  # a full disk is not kept full for a resume
        reason = str(exc) if isinstance(exc, HttpFailure) else failure_reason(exc)
        raise DownloadFailed(f"{named}: downloading {redact(url)} failed: {reason}") from None
    if magic is not None and read_magic(partial) != magic:
        partial.unlink()
        raise ModelInvalid(f"{named}: {redact(url)} is not a GGUF file (it does not start with `GGUF`)")
    if sha256 is not None and actual != sha256:
        partial.unlink()
        raise ModelInvalid(f"{named}: {redact(url)} has sha256 {actual}, expected {sha256}{wanted.expected_from}")
    return actual


def _stream_to(wanted: RemoteFile, partial: Path, net: NetSettings, progress: Progress | None, stop: Stop) -> str:
    """Write the body to `partial` (after what it already holds, when the server resumes), fsynced;
    return the whole file's sha256."""
    have = partial.stat().st_size if partial.is_file() else 0
    asked = {"Range": f"bytes={have}-"} if have else {}
    with http_get(wanted.url, net, asked) as response:
        if response.status == 416:  # the partial file is no prefix of the server's file: start over
            partial.unlink()
            return _stream_to(wanted, partial, net, progress, stop)
        resumed = have > 0 and _resumes_at(response, have)
        digest = _sha256_of(partial) if resumed else hashlib.sha256()
        done = have if resumed else 0
        total = _total_size(response, done)
        if wanted.size is not None and total not in (None, wanted.size):
            raise HttpFailure(f"the server's file is {total} bytes, {wanted.size} were expected")
        total = wanted.size if total is None else total
        _check_free_space(partial.parent, None if total is None else total - done)
        if progress:
            progress.begin(wanted.model_id, total)
        ok = False
        try:
            with partial.open("ab" if resumed else "wb") as out, stop.watching(response):
                done = _Copy(out, digest, progress, stop, wanted.model_id, total).run(response, done)
                out.flush()
                os.fsync(out.fileno())
            if total is not None and done != total:
                raise HttpFailure(f"the body ended after {done} of {total} bytes")
            ok = True
        finally:
            if progress:
                progress.end(ok)
    return digest.hexdigest()


@dataclass
class _Copy:
    """The body into the file and the hash, watched for a stop and for a server that drips."""

    out: BinaryIO
    digest: hashlib._Hash
    progress: Progress | None
    stop: Stop
    model_id: str
    most: int | None = None  # never more than this (the size expected)

    def run(self, response: Response, done: int) -> int:
        window_start, window_bytes = time.monotonic(), 0
        while chunk := response.read1(CHUNK_BYTES):
            self.stop.check(self.model_id)
            if self.most is not None and done + len(chunk) > self.most:
                raise HttpFailure(f"the server sent more than the {self.most} bytes expected")
            self.out.write(chunk)
            self.digest.update(chunk)
            done += len(chunk)
            window_bytes += len(chunk)
            if self.progress:
                self.progress.update(done)
            if time.monotonic() - window_start >= WINDOW_S:
                _check_speed(window_bytes)
                window_start, window_bytes = time.monotonic(), 0
            if done // SPACE_CHECK_BYTES != (done - len(chunk)) // SPACE_CHECK_BYTES:
                _check_free_space(Path(self.out.name).parent, FREE_MARGIN_BYTES)
        self.stop.check(self.model_id)
        return done


def _check_speed(window_bytes: int) -> None:
    if window_bytes < MIN_WINDOW_BYTES:
        raise HttpFailure(
            f"the server sent less than {human_bytes(MIN_WINDOW_BYTES)} in {WINDOW_S:.0f} s: too slow, given up "
            "(the part received is kept and the next attempt resumes)"
        )


def _resumes_at(response: Response, offset: int) -> bool:
    """A 206 whose Content-Range starts where the partial file ends; anything else starts over."""
    content_range = response.headers.get("Content-Range", "")
    return response.status == 206 and content_range.startswith(f"bytes {offset}-")


def _total_size(response: Response, done: int) -> int | None:
    if response.status == 206:
        whole = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(whole) if _DIGITS.fullmatch(whole) else None
    value = response.headers.get("Content-Length") or ""
    return int(value) if _DIGITS.fullmatch(value) else None  # not isdigit(): "²" is a digit int() refuses


def _sha256_of(path: Path) -> hashlib._Hash:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest


class NoSpace(HttpFailure):
    """The disk cannot hold the file, or would be left nearly full."""


def _check_free_space(folder: Path, needed: int | None) -> None:
    if needed is None:
        return
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise NoSpace(
            f"not enough disk space in {folder}: the file needs {human_bytes(needed)} more, {human_bytes(free)} free"
        )
