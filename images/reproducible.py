"""What makes two builds of one Cortexfile byte-identical: one time for everything a build stamps,
and one way to write an archive member (sorted by the caller, owned by root, fixed modes and times).

The time is `SOURCE_DATE_EPOCH` when set (reproducible-builds.org), else the newest modification
time of the build's inputs (the Cortexfile, the baked models): never the clock.
"""

from __future__ import annotations

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
    name: str, size: int, epoch: int, *, directory: bool = False, executable: bool = False
) -> tarfile.TarInfo:
    """An archive member that says nothing of the machine that wrote it."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.size = 0 if directory else size
    info.mtime = epoch
    info.mode = 0o755 if directory or executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def is_executable(path: Path) -> bool:
    return bool(path.stat().st_mode & EXECUTABLE_BITS)
