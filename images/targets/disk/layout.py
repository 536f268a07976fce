"""A raw disk image from a root folder and boot files, without loop devices or mounts:
`mke2fs -d` fills the ext4 root, `mkfs.vfat` + mtools the FAT boot partition, `sfdisk` writes the
partition table into the file, and both partitions are copied in at their offsets.

Reproducible: file system ids and the directory hash seed come from the plan, file system times from
the source epoch (E2FSPROGS_FAKE_TIME, mkfs.vfat --invariant, file times clamped first).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.runtime.update.slots import DATA_LABEL, partition_label

from .plan import BOOT_MIB, ESP_LABEL, ROOT_LABEL, DiskPlan

SECTOR = 512
MIB = 1 << 20
OFFSET_MIB = 1  # the partition table, and alignment
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"  # the data partition
# The Discoverable Partitions root type of each architecture: systemd finds the root without an fstab line.
ROOT_TYPES = {"amd64": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "arm64": "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"}
BLOCK = 4096
INODE_BYTES = 256
JOURNAL_MIB = 64


class LayoutError(RuntimeError):
    """The image could not be assembled; the message names the tool and its complaint."""


@dataclass(frozen=True)
class BootFile:
    source: Path | None  # a file to copy, or None for `text` (or `data`)
    text: str = ""
    data: bytes | None = None


def content_mib(root: Path) -> int:
    """What the root folder takes as an ext4 file system: blocks of every file (hard links once),
    an inode each, and the journal, with a tenth on top for metadata."""
    seen: set[tuple[int, int]] = set()
    blocks = inodes = 0
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            stat = os.lstat(os.path.join(folder, name))
            inodes += 1
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                blocks += -(-stat.st_size // BLOCK)
    total = blocks * BLOCK + inodes * INODE_BYTES
    return int(total * 1.1) // MIB + JOURNAL_MIB + 1


def clamp_times(root: Path, epoch: int) -> None:
    """No file newer than the source epoch (SOURCE_DATE_EPOCH's rule), links included; access times
    equal to modification times (reading a file must not change the image)."""
    for path in [str(root), *_paths(root)]:
        stamp = min(int(os.lstat(path).st_mtime), epoch)
        os.utime(path, (stamp, stamp), follow_symlinks=False)


def _paths(root: Path) -> list[str]:
    return sorted(os.path.join(folder, name) for folder, dirs, files in os.walk(root) for name in dirs + files)


@dataclass(frozen=True)
class Sizes:
    """Partition sizes in MiB: the root file system, the slot that holds it (bigger: room for the versions after it),
    and the data partition (first boot grows it to the disk)."""

    root: int
    slot: int
    data: int

    @property
    def disk(self) -> int:
        return OFFSET_MIB + BOOT_MIB + 2 * self.slot + self.data + OFFSET_MIB


def make_disk(
    plan: DiskPlan, root: Path, boot: Mapping[str, BootFile], work: Path, *, sizes: Sizes, epoch: int, data: Path
) -> Path:
    """The raw disk image `work/disk.img`: the boot partition, the root (slot a), an empty slot b and the data
    partition made from the folder `data`."""
    images: list[tuple[Path | None, int]] = [
        (_boot_partition(plan, boot, work / "boot.part", epoch), BOOT_MIB),
        (root_file_system(plan, root, work / "root.part", sizes.root, epoch), sizes.slot),
        (None, sizes.slot),
        (data_file_system(plan, data, work / "data.part", sizes.data, epoch), sizes.data),
    ]
    disk = work / "disk.img"
    with disk.open("wb") as file:
        file.truncate(sizes.disk * MIB)
    starts = [OFFSET_MIB * MIB // SECTOR]
    for _, size in images[:-1]:
        starts.append(starts[-1] + size * MIB // SECTOR)
    table = _table(plan, [(start, size * MIB // SECTOR) for start, (_, size) in zip(starts, images, strict=True)])
    _run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(disk)], stdin=table)
    for (image, _), start in zip(images, starts, strict=True):
        if image is not None:
            _place(image, disk, start * SECTOR)
            image.unlink()
    return disk


def _table(plan: DiskPlan, extents: list[tuple[int, int]]) -> str:
    """sfdisk's script for the partitions at `extents` (start, size in sectors). GPT on every board: the Raspberry
    Pi 4's and 5's EEPROM boot loaders read it (the Pi 4's since its 2020-09 release) and boot the first FAT
    partition, an EFI system partition here as on UEFI boards."""
    ids = plan.ids
    root_type = ROOT_TYPES[plan.architecture]
    kinds = [
        (ESP_TYPE, ids.boot_partition, ESP_LABEL),
        (root_type, ids.root_partition, partition_label("a")),
        (root_type, ids.other_root_partition, partition_label("b")),
        (LINUX_TYPE, ids.data_partition, DATA_LABEL),
    ]
    lines = [f"start={start}, size={size}, type={kind}, uuid={uuid}, name={name}"
             for (start, size), (kind, uuid, name) in zip(extents, kinds, strict=True)]  # fmt: skip
    return f"label: gpt\nlabel-id: {ids.disk}\n" + "\n".join(lines) + "\n"


def data_file_system(plan: DiskPlan, folder: Path, image: Path, size_mib: int, epoch: int) -> Path:
    image.unlink(missing_ok=True)
    command = ["mke2fs", "-q", "-t", "ext4", "-d", str(folder), "-L", DATA_LABEL, "-U", plan.ids.data_fs]
    extended = f"hash_seed={plan.ids.data_hash_seed},root_owner=0:0,nodiscard"
    command += ["-E", extended, "-b", str(BLOCK), "-F", str(image), f"{size_mib}M"]
    _run(command, env={**os.environ, "E2FSPROGS_FAKE_TIME": str(epoch)})
    _fix_times(image, folder, epoch)
    return image


def root_file_system(plan: DiskPlan, root: Path, image: Path, root_mib: int, epoch: int) -> Path:
    image.unlink(missing_ok=True)
    extended = f"hash_seed={plan.ids.root_hash_seed},root_owner=0:0,nodiscard"
    command = ["mke2fs", "-q", "-t", "ext4", "-d", str(root), "-L", ROOT_LABEL, "-U", plan.ids.root_fs]
    command += ["-E", extended, "-b", str(BLOCK), "-I", str(INODE_BYTES), "-F", str(image), f"{root_mib}M"]
    _run(command, env={**os.environ, "E2FSPROGS_FAKE_TIME": str(epoch)})
    _fix_times(image, root, epoch)
    return image


def _fix_times(image: Path, root: Path, epoch: int) -> None:
    """mke2fs -d copies each file's change time, which only the kernel sets (to when the build wrote it),
    and its access time, which mke2fs's own reading moves: set both to the epoch with debugfs, by path."""
    commands = [f"sif / {field} {epoch}\n" for field in ("ctime", "atime")]
    for path in _paths(root):
        inside = "/" + os.path.relpath(path, root)
        if '"' in inside or not inside.isprintable():
            raise LayoutError(f"{inside!r}: a path debugfs cannot name; the image would not be reproducible")
        commands += [f'sif "{inside}" {field} {epoch}\n' for field in ("ctime", "atime")]
    script = image.with_name("ctimes.debugfs")
    script.write_text("".join(commands), encoding="utf-8")
    env = {**os.environ, "E2FSPROGS_FAKE_TIME": str(epoch)}
    command = ["debugfs", "-w", "-f", str(script), str(image)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=600)
    script.unlink()
    complaints = [line for line in done.stderr.splitlines() if line and not line.startswith("debugfs ")]
    if done.returncode != 0 or complaints:
        raise LayoutError(f"debugfs could not set change times: {' / '.join(complaints[:3])}")


def _boot_partition(plan: DiskPlan, files: Mapping[str, BootFile], image: Path, epoch: int) -> Path:
    image.unlink(missing_ok=True)
    _run(
        [
            "mkfs.vfat",
            "--invariant",
            "-F",
            "32",
            "-n",
            "BOOT",
            "-i",
            plan.ids.boot_volume_id,
            "-C",
            str(image),
            str(BOOT_MIB * 1024),
        ]
    )
    staged = image.with_name("boot-files")
    folders = sorted({str(Path(name).parent) for name in files} - {"."}, key=lambda f: (f.count("/"), f))
    for folder in _with_parents(folders):
        _mtools("mmd", "-i", str(image), f"::/{folder}", epoch=epoch)
    for index, (name, file) in enumerate(sorted(files.items())):
        source = file.source
        if source is None:
            source = staged / str(index)
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_bytes(file.text.encode("utf-8") if file.data is None else file.data)
            os.utime(source, (epoch, epoch))
        _mtools("mcopy", "-m", "-i", str(image), str(source), f"::/{name}", epoch=epoch)
    return image


def _with_parents(folders: list[str]) -> list[str]:
    every = {str(p) for folder in folders for p in [Path(folder), *Path(folder).parents] if str(p) != "."}
    return sorted(every, key=lambda f: (f.count("/"), f))


def _place(part: Path, disk: Path, offset: int) -> None:
    """Copy a partition image into the disk at `offset`, keeping its holes (the image stays sparse)."""
    _run(["dd", f"if={part}", f"of={disk}", "bs=1M", f"seek={offset // MIB}", "conv=notrunc,sparse", "status=none"])


def _mtools(*args: str, epoch: int) -> None:
    _run(list(args), env={**os.environ, "MTOOLS_SKIP_CHECK": "1", "SOURCE_DATE_EPOCH": str(epoch)})


def _run(command: list[str], stdin: str | None = None, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, check=False, timeout=1800)
    if done.returncode != 0:
        complaint = (done.stderr or done.stdout).strip()[-800:]
        raise LayoutError(f"{command[0]} failed: {complaint}")
