"""The two root slots of an A/B device and how its boot loader picks one: the one place that knows the A/B layout.

Each slot has a partition (GPT name `cortex-a`, `cortex-b`) and a kernel and initrd on the boot partition
(`cortex/<slot>/`). Which slot boots is the boot loader's, and a new version boots once on trial:
- UEFI boards (systemd-boot, the EFI system partition at /boot/efi): a boot entry per slot
  (`loader/entries/cortex-<slot>.conf`). An entry written for a new version carries a try counter
  (`cortex-b+1.conf`): systemd-boot counts the try down before booting it, sorts an entry with no tries left after
  the others, and so returns to the other slot by itself unless the new one is blessed (the counter removed) after
  it proved it answers.
- Raspberry Pi boards (the firmware starts U-Boot, whose boot.scr picks the slot; the boot partition at
  /boot/firmware): see `uboot.py`.
The disk builder writes the first entry with the same code.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from menlo_cortex.cortexfile.formats import DEVICE_DATA

from ..ops.durable import fsync_dir
from .bootfiles import (
    ESP_FOLDER,
    SLOT_OPTION,
    SLOTS,
    Entry,
    command_line,
    install_kernel,
    remove_kernel,
    write_fat_text,
)
from .uboot import SCRIPT as UBOOT_SCRIPT
from .uboot import UBootOnce

DATA_LABEL = "cortex-data"
ENTRIES = "loader/entries"
SORT_KEY = "cortex"  # same sort key, so systemd-boot orders the slots' entries by version, the newest first
_ENTRY = re.compile(r"cortex-(?P<slot>[ab])(\+(?P<left>[0-9]{1,3})(-(?P<done>[0-9]{1,3}))?)?\.conf")
_SLOT_ARGUMENT = re.compile(rf"(?:^|\s){re.escape(SLOT_OPTION)}=([ab])(?:\s|$)")
_ROOT_ARGUMENT = re.compile(r"(?:^|\s)root=PARTUUID=([0-9a-fA-F-]{36})(?:\s|$)")


class SlotError(RuntimeError):
    """The slots or the boot partition are not as an A/B device has them; the message says what."""


def partition_label(slot: str) -> str:
    return f"cortex-{slot}"


def other(slot: str) -> str:
    return SLOTS[1 - SLOTS.index(slot)]


def entry_text(slot: str, version: str, root_partuuid: str, boot_options: str) -> str:
    """A Boot Loader Specification entry for `slot` (type 1: kernel and initrd on the EFI system partition)."""
    return (
        f"title Cortex {version}\n"
        f"sort-key {SORT_KEY}\n"
        f"version {version}\n"
        f"linux /{ESP_FOLDER}/{slot}/vmlinuz\n"
        f"initrd /{ESP_FOLDER}/{slot}/initrd.img\n"
        f"options {command_line(slot, root_partuuid, boot_options)}\n"
    )


@dataclass(frozen=True)
class Partition:
    device: Path
    partuuid: str
    size: int  # bytes


@dataclass(frozen=True)
class Device:
    """Where the device keeps what an update touches; a test points these at files and folders."""

    esp: Path = Path("/boot/efi")
    firmware: Path = Path("/boot/firmware")  # a Raspberry Pi's boot partition
    data: Path = Path(DEVICE_DATA)
    cmdline: Path = Path("/proc/cmdline")
    os_release: Path = Path("/usr/lib/os-release")
    root: Path = Path("/")  # the running system, whose own state a new slot receives
    boot_id_file: Path = Path("/proc/sys/kernel/random/boot_id")

    def boot_id(self) -> str:
        try:
            return self.boot_id_file.read_text(encoding="ascii", errors="replace").strip()[:64]
        except OSError:
            return ""

    @property
    def state_folder(self) -> Path:
        return self.data / "update"

    def booted_slot(self) -> str | None:
        """The slot the kernel command line names, else the GPT name of the root's partition (a sandbox that hides
        /proc/cmdline, as cortex.service's ProcSubset=pid does, still sees /sys); None on an image without slots."""
        found = _SLOT_ARGUMENT.search(self._cmdline())
        if found:
            return found.group(1)
        name = _partition_name(self.root)
        return next((slot for slot in SLOTS if name == partition_label(slot)), None)

    def booted_partuuid(self) -> str | None:
        found = _ROOT_ARGUMENT.search(self._cmdline())
        return found.group(1).lower() if found else None

    def _cmdline(self) -> str:
        try:
            return self.cmdline.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def partition(self, slot: str) -> Partition:
        """The partition of `slot` on the disk the system booted from (another disk's labels are never used)."""
        booted = self.booted_partuuid()
        if booted is None:
            raise SlotError("the kernel command line names no root=PARTUUID=: not booted from a Cortex A/B disk")
        table = _block_devices()
        disk = next((row.get("pkname") for row in table if (row.get("partuuid") or "").lower() == booted), None)
        for row in table:
            if row.get("pkname") == disk and row.get("partlabel") == partition_label(slot) and row.get("partuuid"):
                return Partition(Path(str(row["path"])), str(row["partuuid"]).lower(), int(row.get("size") or 0))
        raise SlotError(f"no partition named {partition_label(slot)} on the boot disk: this disk has no A/B slots")

    @property
    def loader(self) -> SystemdBoot | UBootOnce:
        """U-Boot's boot-once files on a Raspberry Pi's boot partition, else systemd-boot's entries."""
        if (self.firmware / UBOOT_SCRIPT).is_file():
            return UBootOnce(self.firmware)
        return SystemdBoot(self.esp)

    def entries(self) -> dict[str, Entry]:
        """The boot entries of the slots, by slot."""
        return self.loader.entries(self.booted_slot())

    def on_trial(self) -> bool:
        """The booted slot is a new version that has not proved itself yet."""
        entry = self.entries().get(self.booted_slot() or "")
        return entry is not None and entry.on_trial

    def remove_entry(self, slot: str) -> None:
        """The slot is about to be overwritten: from now on the boot loader never picks it."""
        self.loader.remove_entry(slot)

    def install_boot_files(self, slot: str, kernel: Path, initrd: Path) -> None:
        self.loader.install_boot_files(slot, kernel, initrd)

    def add_entry(self, slot: str, version: str, root_partuuid: str, boot_options: str) -> None:
        """The new slot's entry, with one boot to prove itself; written last, so a power cut before it leaves the
        device booting the slot it ran."""
        self.loader.add_entry(slot, version, root_partuuid, boot_options)

    def mark_bad(self, slot: str) -> None:
        """The slot failed its check: the boot loader picks the other slot next."""
        self.loader.mark_bad(slot)

    def bless(self, slot: str) -> bool:
        """The booted slot answered: it stays. False when it was not on trial."""
        return self.loader.bless(slot)


@dataclass(frozen=True)
class SystemdBoot:
    """Boot Loader Specification entries with systemd-boot's try counters, on the EFI system partition."""

    esp: Path

    def entries(self, booted: str | None = None) -> dict[str, Entry]:
        folder = self.esp / ENTRIES
        found: dict[str, Entry] = {}
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            match = _ENTRY.fullmatch(path.name)
            if match is None or path.is_symlink():
                continue
            left = match.group("left")
            found[match.group("slot")] = Entry(
                match.group("slot"), path, None if left is None else int(left), _entry_version(path)
            )
        return found

    def remove_entry(self, slot: str) -> None:
        entry = self.entries().get(slot)
        if entry is not None:
            entry.path.unlink()
            fsync_dir(entry.path.parent)
        remove_kernel(self.esp, slot)

    def install_boot_files(self, slot: str, kernel: Path, initrd: Path) -> None:
        install_kernel(self.esp, slot, kernel, initrd)

    def add_entry(self, slot: str, version: str, root_partuuid: str, boot_options: str) -> None:
        (self.esp / ENTRIES).mkdir(parents=True, exist_ok=True)
        text = entry_text(slot, version, root_partuuid, boot_options)
        write_fat_text(self.esp / ENTRIES / f"cortex-{slot}+1.conf", text)

    def mark_bad(self, slot: str) -> None:
        """No tries left, so systemd-boot picks the other slot next, even on firmware that would not let systemd-boot
        count the try down itself."""
        entry = self.entries().get(slot)
        if entry is not None and entry.tries_left != 0:
            os.rename(entry.path, entry.path.with_name(f"cortex-{slot}+0-1.conf"))
            fsync_dir(entry.path.parent)

    def bless(self, slot: str) -> bool:
        """The entry loses its counter and stays."""
        entry = self.entries().get(slot)
        if entry is None or not entry.on_trial:
            return False
        os.rename(entry.path, entry.path.with_name(f"cortex-{slot}.conf"))
        fsync_dir(entry.path.parent)
        return True


def _partition_name(mount: Path) -> str | None:
    """The GPT name of the partition the file system at `mount` is on (sysfs's PARTNAME of its device)."""
    try:
        device = os.stat(mount).st_dev
        uevent = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}/uevent").read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r"^PARTNAME=(.{1,72})$", uevent, re.MULTILINE)
    return found.group(1) if found else None


def _entry_version(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return ""
    found = re.search(r"^version ([0-9.]{1,40})$", text, re.MULTILINE)
    return found.group(1) if found else ""


def _block_devices() -> list[dict[str, Any]]:
    command = ["lsblk", "--json", "--list", "--bytes", "--paths", "-o", "PATH,PKNAME,PARTUUID,PARTLABEL,SIZE"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
        rows: list[dict[str, Any]] = json.loads(done.stdout)["blockdevices"]
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError):
        raise SlotError("lsblk could not list the block devices") from None
    return rows
