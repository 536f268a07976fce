"""A UEFI-bootable GPT disk image from a root folder, without loop devices or mounts:
mke2fs -d fills the root file system, mtools the FAT ESP (systemd-boot, kernel, initrd),
sfdisk writes the partition table into the file, dd places both partitions."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SECTOR = 512
ESP_MIB = 128
ROOT_PART_UUID = "6b3c2a4e-53a1-4bd0-9f6e-c0a7e5c1d001"  # fixed, so the kernel's root= can name it
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
ROOT_TYPE = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"  # Linux root (x86-64)
SYSTEMD_BOOT = Path("/usr/lib/systemd/boot/efi/systemd-bootx64.efi")
OFFSET_MIB = 1


def make_disk(root: Path, work: Path, root_mib: int) -> Path:
    (root / "etc" / "fstab").write_text(f"PARTUUID={ROOT_PART_UUID} / ext4 rw,relatime 0 1\n", encoding="utf-8")
    esp = _esp(root, work / "esp.img")
    rootfs = work / "root.img"
    _run(["mke2fs", "-q", "-t", "ext4", "-d", str(root), "-L", "root", str(rootfs), f"{root_mib}M"])
    disk = work / "disk.img"
    total_mib = OFFSET_MIB + ESP_MIB + root_mib + OFFSET_MIB
    with disk.open("wb") as file:
        file.truncate(total_mib << 20)
    esp_start = (OFFSET_MIB << 20) // SECTOR
    root_start = esp_start + (ESP_MIB << 20) // SECTOR
    table = (
        "label: gpt\n"
        f"start={esp_start}, size={(ESP_MIB << 20) // SECTOR}, type={ESP_TYPE}, name=esp\n"
        f"start={root_start}, size={(root_mib << 20) // SECTOR}, type={ROOT_TYPE}, uuid={ROOT_PART_UUID}, name=root\n"
    )
    _run(["sfdisk", "--quiet", str(disk)], stdin=table)
    for image, start in ((esp, esp_start), (rootfs, root_start)):
        _run(["dd", f"if={image}", f"of={disk}", "bs=1M", f"seek={start * SECTOR >> 20}", "conv=notrunc,sparse"])
        image.unlink()
    return disk


def _esp(root: Path, image: Path) -> Path:
    kernel = max((root / "boot").glob("vmlinuz-*"))
    initrd = root / "boot" / ("initrd.img-" + kernel.name.removeprefix("vmlinuz-"))
    _run(["mkfs.vfat", "-C", str(image), str(ESP_MIB * 1024)])
    for folder in ("::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"):
        _mtools("mmd", "-i", str(image), folder)
    loader = image.with_name("loader.conf")
    loader.write_text("default cortex.conf\ntimeout 0\n", encoding="utf-8")
    entry = image.with_name("cortex.conf")
    options = f"root=PARTUUID={ROOT_PART_UUID} rw console=ttyS0 systemd.show_status=1"
    entry.write_text(f"title Cortex\nlinux /vmlinuz\ninitrd /initrd.img\noptions {options}\n", encoding="utf-8")
    for source, dest in (
        (SYSTEMD_BOOT, "::/EFI/BOOT/BOOTX64.EFI"),
        (kernel, "::/vmlinuz"),
        (initrd, "::/initrd.img"),
        (loader, "::/loader/loader.conf"),
        (entry, "::/loader/entries/cortex.conf"),
    ):
        _mtools("mcopy", "-i", str(image), str(source), dest)
    return image


def _mtools(*args: str) -> None:
    _run(list(args), env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})


def _run(command: list[str], stdin: str | None = None, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, check=False, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {done.stderr.strip()}")
