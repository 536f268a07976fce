"""The bundle's tarball: sorted entries, owner root, mtimes clamped to SOURCE_DATE_EPOCH (default 0),
so the same bundle folder gives the same bytes; plus `NAME.sha256` in sha256sum's format."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path

from ...runtime.store import file_sha256


def write_tarball(folder: Path) -> tuple[Path, str]:
    tarball = folder.with_name(folder.name + ".tar")
    partial = tarball.with_name(tarball.name + ".partial")
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
        for path in [folder, *sorted(folder.rglob("*"))]:
            archive.add(path, arcname=str(path.relative_to(folder.parent)), recursive=False, filter=_normalized(epoch))
    partial.replace(tarball)
    sha = file_sha256(tarball)
    tarball.with_name(tarball.name + ".sha256").write_text(f"{sha}  {tarball.name}\n", encoding="utf-8")
    return tarball, sha


def _normalized(epoch: int) -> Callable[[tarfile.TarInfo], tarfile.TarInfo]:
    def apply(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = min(int(info.mtime), epoch) if epoch else 0
        info.mode = 0o755 if info.isdir() or info.mode & 0o100 else 0o644
        return info

    return apply
