"""Image layers whose bytes depend only on their content: sorted entries, numeric owners and no names,
one modification time for everything (the build's SOURCE_DATE_EPOCH), gzip without a name or a time.

A layer is written once, hashed while it is written (the compressed digest for the manifest, the
uncompressed one for the config's diff_ids), and never read back.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ...reproducible import tar_member

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR_LAYER = "application/vnd.oci.image.layer.v1.tar"
GZIP_LEVEL = 6
CHUNK = 1 << 20


@dataclass(frozen=True)
class Blob:
    """A content-addressed file of the image: its digest, size and media type (a layer's diff_id too)."""

    digest: str  # sha256:<hex>
    size: int
    media_type: str
    diff_id: str = ""  # the uncompressed tar's digest; equal to `digest` for an uncompressed layer

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}

    @property
    def hex(self) -> str:
        return self.digest.removeprefix("sha256:")


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class _Hashing:
    """A write-only stream that hashes and counts what passes through it to `out`. The hash runs on a
    thread of its own (hashlib lets go of the GIL), beside the write: a model's layer costs about the
    slower of the two, not their sum."""

    def __init__(self, out: _Sink) -> None:
        self.out = out
        self.sha = hashlib.sha256()
        self.size = 0
        self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="layer-hash")  # in order: one worker

    def write(self, data: bytes) -> int:
        self._hasher.submit(self.sha.update, bytes(data))
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()

    @property
    def digest(self) -> str:
        self._hasher.shutdown(wait=True)
        return f"sha256:{self.sha.hexdigest()}"


def write_layer(dest: Path, fill: Callable[[tarfile.TarFile], None], *, compress: bool) -> Blob:
    """`fill` adds the members to a tar written to `dest` (gzip-compressed when `compress`)."""
    with dest.open("wb") as out:
        outer = _Hashing(out)
        packer = (
            gzip.GzipFile(filename="", mode="wb", fileobj=outer, mtime=0, compresslevel=GZIP_LEVEL)
            if compress
            else None
        )
        inner = _Hashing(packer) if packer is not None else outer  # uncompressed: one digest, hashed once
        with tarfile.open(fileobj=inner, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK) as tar:  # type: ignore[call-overload]
            tar.copybufsize = CHUNK
            fill(tar)
        if packer is not None:
            packer.close()
    media_type = GZIP_LAYER if compress else TAR_LAYER
    return Blob(outer.digest, outer.size, media_type, inner.digest)


@dataclass(frozen=True)
class Tree:
    """A folder on the host to be laid into the image at `prefix`: what to leave out, and files whose
    content is rewritten on the way (e.g. a date that debootstrap stamped)."""

    root: Path
    prefix: str = ""
    empty: frozenset[str] = frozenset()  # folders kept, their content not
    skip: Callable[[str], bool] = lambda name: False
    rewrite: Callable[[str, bytes], bytes | None] = lambda name, data: None
    rewritten: frozenset[str] = frozenset()  # names `rewrite` must see whatever their size
    # Owned by root, 0755 or 0644 by the execute bit: a tree this build wrote (the venv), whose owners
    # and modes are the build host's (its user, its umask), not the image's.
    plain: bool = False


def add_tree(tar: tarfile.TarFile, tree: Tree, epoch: int) -> None:
    """Every folder, file, symlink and hard link of the tree, sorted by name; device nodes, sockets and
    pipes never (the engine makes /dev)."""
    linked: dict[tuple[int, int], str] = {}
    for relative, path, status in _walk(tree):
        name = f"{tree.prefix}{relative}"
        info = tar_member(name, epoch, mode=_mode(tree, status))
        if not tree.plain:
            info.uid, info.gid = status.st_uid, status.st_gid
        if stat.S_ISDIR(status.st_mode):
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        elif stat.S_ISLNK(status.st_mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
            tar.addfile(info)
        elif stat.S_ISREG(status.st_mode):
            _add_regular(tar, tree, info=info, path=path, status=status, linked=linked)


def _mode(tree: Tree, status: os.stat_result) -> int:
    if not tree.plain:
        return stat.S_IMODE(status.st_mode)
    return 0o755 if stat.S_ISDIR(status.st_mode) or status.st_mode & 0o111 else 0o644


def _add_regular(
    tar: tarfile.TarFile,
    tree: Tree,
    *,
    info: tarfile.TarInfo,
    path: Path,
    status: os.stat_result,
    linked: dict[tuple[int, int], str],
) -> None:
    identity = (status.st_dev, status.st_ino)
    if status.st_nlink > 1 and identity in linked:
        info.type, info.linkname = tarfile.LNKTYPE, linked[identity]
        tar.addfile(info)
        return
    linked[identity] = info.name
    if status.st_size < CHUNK or info.name in tree.rewritten:  # read whole, once: `rewrite` may replace it
        data = path.read_bytes()
        rewritten = tree.rewrite(info.name, data)
        data = data if rewritten is None else rewritten
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        return
    info.size = status.st_size
    with path.open("rb") as stream:
        tar.addfile(info, stream)


def _walk(tree: Tree, folder: Path | None = None, relative: str = "") -> Iterator[tuple[str, Path, os.stat_result]]:
    """(name in the tree, host path, lstat) for every entry, depth first, parents before their content,
    siblings sorted by name."""
    for name in sorted(os.listdir(folder or tree.root)):
        path = (folder or tree.root) / name
        inner = f"{relative}{name}"
        if tree.skip(inner):
            continue
        status = path.lstat()
        yield inner, path, status
        if stat.S_ISDIR(status.st_mode) and inner not in tree.empty:
            yield from _walk(tree, path, f"{inner}/")
