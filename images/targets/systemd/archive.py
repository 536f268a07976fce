"""The bundle's tarball, written with the one member normaliser every target uses (sorted entries,
owner root, fixed modes, the build's source time), plus `NAME.sha256` in sha256sum's format."""

from __future__ import annotations

import tarfile
from pathlib import Path

from menlo_cortex.runtime.models.model_store import file_sha256

from ...reproducible import add_file, add_folder, is_executable


def write_tarball(folder: Path, epoch: int) -> tuple[Path, str]:
    tarball = folder.with_name(folder.name + ".tar")
    partial = tarball.with_name(tarball.name + ".partial")
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
        for path in [folder, *sorted(folder.rglob("*"))]:
            name = str(path.relative_to(folder.parent))
            if path.is_dir():
                add_folder(archive, name, epoch)
            else:
                add_file(archive, name, path, epoch, mode=0o755 if is_executable(path) else 0o644)
    partial.replace(tarball)
    sha = file_sha256(tarball)
    tarball.with_name(tarball.name + ".sha256").write_text(f"{sha}  {tarball.name}\n", encoding="utf-8")
    return tarball, sha
