"""What makes two builds of one Cortexfile byte-identical: one time for everything a build stamps,
and one way to write an archive member (sorted by the caller, numeric owners, fixed modes and times),
which every archive Cortex writes uses: the docker context, OCI layers and layouts, the systemd bundle.

The time is `SOURCE_DATE_EPOCH` when set (reproducible-builds.org), else the newest modification
time of the build's inputs (the Cortexfile, the baked models): never the clock.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

EXECUTABLE_BITS = 0o111


def source_epoch(inputs: Iterable[Path], environ: Mapping[str, str]) -> int:
    """Seconds since 1970 that stand for this build; ValueError for a malformed SOURCE_DATE_EPOCH."""
    given = environ.get("SOURCE_DATE_EPOCH")
    if given:
        if not given.isdigit():
            raise ValueError("SOURCE_DATE_EPOCH must be a whole number of seconds since 1970")
        return int(given)
    return max((int(path.stat().st_mtime) for path in inputs), default=0)


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tar_member(
    name: str, epoch: int, *, mode: int = 0o644, size: int = 0, kind: bytes = tarfile.REGTYPE, owner: int = 0
) -> tarfile.TarInfo:
    """A member that says nothing of the machine that wrote it: a relative name, numeric owner only (root
    unless given), the mode given, the build's time."""
    if not name or name.startswith("/") or ".." in name.split("/"):
        raise ValueError(f"not a relative path inside the archive: {name!r}")
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size if kind == tarfile.REGTYPE else 0
    info.mtime = epoch
    info.uid = info.gid = owner
    info.uname = info.gname = ""
    return info


def add_folder(tar: tarfile.TarFile, name: str, epoch: int, *, mode: int = 0o755, owner: int = 0) -> None:
    tar.addfile(tar_member(name, epoch, mode=mode, kind=tarfile.DIRTYPE, owner=owner))


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, epoch: int, *, mode: int = 0o644) -> None:
    tar.addfile(tar_member(name, epoch, mode=mode, size=len(data)), io.BytesIO(data))


def add_file(tar: tarfile.TarFile, name: str, source: Path, epoch: int, *, mode: int = 0o644) -> None:
    """A host file's bytes (never its owner, mode or time)."""
    with source.open("rb") as stream:
        tar.addfile(tar_member(name, epoch, mode=mode, size=source.stat().st_size), stream)


def is_executable(path: Path) -> bool:
    return bool(path.stat().st_mode & EXECUTABLE_BITS)
