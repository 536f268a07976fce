"""The bundle's tarball, written with the one member rule every archive follows (sorted entries, numeric
root owner, fixed modes, the build's source time), plus `NAME.sha256` in sha256sum's format; both
published by rename (images/artifacts.py)."""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import BinaryIO

from menlo_cortex.runtime.models.model_store import file_sha256

from ...artifacts import publish_file
from ...reproducible import add_file, add_folder, is_executable


def write_tarball(folder: Path, epoch: int) -> tuple[Path, str]:
    def write(out: BinaryIO) -> None:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for path in [folder, *sorted(folder.rglob("*"))]:
                name = str(path.relative_to(folder.parent))
                if path.is_dir():
                    add_folder(archive, name, epoch)
                else:
                    add_file(archive, name, path, epoch, mode=0o755 if is_executable(path) else 0o644)

    tarball = publish_file(folder.with_name(folder.name + ".tar"), write)
    sha = file_sha256(tarball)

    def checksum(out: BinaryIO) -> None:
        out.write(f"{sha}  {tarball.name}\n".encode())

    publish_file(tarball.with_name(tarball.name + ".sha256"), checksum)
    return tarball, sha
