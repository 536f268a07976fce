"""The one artifact model every render returns, and the one way every output reaches the disk.

A render returns `Files`: relative path -> `Artifact`, bytes made here or a host file (a model, a wheel)
taken byte for byte. Outputs are written into a private folder made beside their destination and then
published by one rename: `-o` never holds half an output, an old output is replaced whole, and a
destination that is a symbolic link is refused (builds run as root: a link another user planted would
send the output, or the removal of the old one, anywhere).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class Artifact:
    content: bytes | Path  # a host file is hard-linked where the file system allows it, else copied
    mode: int = 0o644  # of bytes written here; a host file keeps its own (a link shares it)


Files = Mapping[str, Artifact]


def text(value: str, mode: int = 0o644) -> Artifact:
    return Artifact(value.encode("utf-8"), mode)


def link_or_copy(source: Path, dest: Path) -> None:
    """`dest` becomes `source`'s content: a hard link where the file system allows it, else a copy."""
    dest.unlink(missing_ok=True)
    try:
        dest.hardlink_to(source)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, dest)


def write_tree(files: Files, folder: Path) -> None:
    """Every file of `files` under `folder`, a private folder that `staging` made."""
    for name, artifact in sorted(files.items()):
        target = folder / _relative(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(artifact.content, Path):
            link_or_copy(artifact.content, target)
            continue
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, artifact.mode)
        with os.fdopen(descriptor, "wb") as out:
            out.write(artifact.content)
        os.chmod(target, artifact.mode)  # whatever the umask took away


@contextlib.contextmanager
def staging(parent: Path, name: str) -> Iterator[Path]:
    """A private folder (0700, a fresh name) in `parent` for building the output `name`; removed afterwards,
    with whatever `publish` did not take out of it."""
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def publish(staged: Path, destination: Path) -> Path:
    """`staged` (a file or a folder, beside `destination`) becomes `destination` in one rename. An old folder
    there is first moved into a private folder of its own, then removed; a link there is refused."""
    refuse_link(destination)
    if destination.is_dir():
        with staging(destination.parent, destination.name + ".old") as old:
            os.rename(destination, old / "previous")
            os.rename(staged, destination)
    else:
        os.replace(staged, destination)
    return destination


def publish_tree(files: Files, destination: Path) -> Path:
    refuse_link(destination)
    with staging(destination.parent, destination.name) as folder:
        write_tree(files, folder)
        os.chmod(folder, 0o755)
        return publish(folder, destination)


def publish_file(destination: Path, write: Callable[[BinaryIO], None], mode: int = 0o644) -> Path:
    """A file written through a fresh private name beside `destination`, then renamed over it."""
    refuse_link(destination)
    with staging(destination.parent, destination.name) as folder:
        partial = folder / destination.name
        with partial.open("xb") as out:
            write(out)
        os.chmod(partial, mode)
        return publish(partial, destination)


def refuse_link(destination: Path) -> None:
    if destination.is_symlink():
        raise OSError(f"{destination} is a symbolic link: give the file or folder itself (builds run as root)")


def _relative(name: str) -> str:
    if not name or name.startswith("/") or ".." in name.split("/"):
        raise ValueError(f"not a relative path inside the output: {name!r}")
    return name
