"""What both boot loaders keep on the boot partition (a FAT file system): each slot's kernel and initrd in
`cortex/<slot>/`, and small text files, each written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..ops.durable import fsync_dir

ESP_FOLDER = "cortex"  # cortex/<slot>/vmlinuz and initrd.img on the boot partition
SLOTS = ("a", "b")
SLOT_OPTION = "cortex.slot"  # the kernel option that names the booted slot


def command_line(slot: str, root_partuuid: str, boot_options: str) -> str:
    """The kernel command line of a slot: its root, the options every slot shares, and its name."""
    return f"root=PARTUUID={root_partuuid} {boot_options} {SLOT_OPTION}={slot}"


@dataclass(frozen=True)
class Entry:
    slot: str
    path: Path
    tries_left: int | None  # None: no counter (a blessed or first entry)
    version: str

    @property
    def on_trial(self) -> bool:
        """Not blessed yet: a try armed, or one being taken (the boot loader returns to the other slot unless it is
        blessed)."""
        return self.tries_left is not None


def install_kernel(boot: Path, slot: str, kernel: Path, initrd: Path) -> None:
    """The slot's kernel and initrd into its folder on the boot partition."""
    folder = boot / ESP_FOLDER / slot
    folder.mkdir(parents=True, exist_ok=True)
    for source, name in ((kernel, "vmlinuz"), (initrd, "initrd.img")):
        with source.open("rb") as stream:
            write_fat_file(folder / name, stream)


def write_fat_text(path: Path, text: str) -> None:
    with tempfile.TemporaryFile() as stream:
        stream.write(text.encode("utf-8"))
        stream.seek(0)
        write_fat_file(path, stream)


def write_fat_file(path: Path, stream: BinaryIO) -> None:
    """Whole or not at all: a new file beside it, flushed, renamed over it. No chmod (FAT has no modes to set;
    the mount's umask decides) and never through a link: O_EXCL makes the new name."""
    temporary = path.with_name(f".{path.name}.new")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    fsync_dir(path.parent)
    # vfat writes a renamed file's directory entry (its first cluster, its size) when the file itself is synced,
    # not the folder: without this, a power cut soon after could leave the name pointing at the old bytes.
    renamed = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(renamed)
    finally:
        os.close(renamed)


def remove_kernel(boot: Path, slot: str) -> None:
    """The slot's kernel and initrd: unused once its entry is gone, and the boot partition is small."""
    for name in ("vmlinuz", "initrd.img"):
        with contextlib.suppress(FileNotFoundError):
            (boot / ESP_FOLDER / slot / name).unlink()
