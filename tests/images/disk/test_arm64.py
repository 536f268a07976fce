"""arm64 device images on real parts (`make test-arm64`; too slow for CI's budget under emulation):
the arm64 UEFI image booted under qemu-system-aarch64 -M virt with UEFI firmware, answering a chat
completion; the Raspberry Pi 4 image's partition table, boot files and cmdline.txt (no Pi is booted:
Debian's qemu has no Pi 4 board)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import find_free_port

from .conftest import plan_for
from .fixtures import (
    GUEST_PORT,
    Ssh,
    build_image,
    debugfs,
    disk_copy,
    fat_file,
    fat_paths,
    needs_image_tools,
    partitions,
)
from .qemu import boot
from .test_boot import first_chat

pytestmark = [pytest.mark.arm64, pytest.mark.slow, pytest.mark.vm, pytest.mark.timeout(7200)]
FIRST_ANSWER_S = 3600  # an emulated arm64 machine on an emulated CPU: boot, then load and decode


@pytest.fixture(autouse=True)
def image_tools() -> None:
    needs_image_tools()


def test_arm64_uefi_image_boots_and_answers(tmp_path: Path, test_data_dir: Path) -> None:
    started = time.monotonic()
    image = build_image(tmp_path, test_data_dir, hardware="arm64-generic", name="cortex-test-arm64-generic")
    print(f"arm64 image built in {time.monotonic() - started:.0f}s")
    disk = disk_copy(image.img, tmp_path / "disk.img")
    ports = {GUEST_PORT: find_free_port(), 22: find_free_port()}
    started = time.monotonic()
    with boot(disk, "arm64", ports) as vm:
        vm.wait_for_key_notice(FIRST_ANSWER_S)
        ssh = Ssh(image.ssh_key, ports[22])
        assert first_chat(vm, ssh.api_key(FIRST_ANSWER_S))
        print(f"arm64: first chat completion {time.monotonic() - started:.0f}s after power-on")
        assert ssh.ok("uname -m") == "aarch64"
        assert ssh.ok("systemctl is-active cortex") == "active"


def test_raspberry_pi_4_image_layout(tmp_path: Path, test_data_dir: Path) -> None:
    image = build_image(tmp_path, test_data_dir, hardware="raspberry-pi-4", name="cortex-test-raspberry-pi-4")
    plan = plan_for(image.cortexfile)
    table = partitions(image.img)
    assert (table["label"], table["id"]) == ("dos", plan.ids.mbr_id)
    boot_part, root_part = table["partitions"]
    assert (boot_part["type"], boot_part.get("bootable"), root_part["type"]) == ("c", True, "83")
    expected = {"start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "vmlinuz", "initrd.img", "config.txt"}
    assert {f"::/{name}" for name in expected} <= fat_paths(image.img, boot_part["start"])
    cmdline = fat_file(image.img, boot_part["start"], "cmdline.txt")
    assert f"root=PARTUUID={plan.ids.mbr_id[2:]}-02 " in cmdline
    assert "console=ttyS1,115200" in cmdline
    config = fat_file(image.img, boot_part["start"], "config.txt")
    assert "arm_64bit=1" in config
    assert "kernel=vmlinuz" in config
    fstab = debugfs(image.img, root_part["start"], "cat /etc/fstab")
    assert f"PARTUUID={plan.ids.mbr_id[2:]}-01\t/boot/firmware\tvfat" in fstab


def test_raspberry_pi_5_image_from_debians_archive(tmp_path: Path, test_data_dir: Path) -> None:
    """Debian 13 with trixie-backports' kernel: the bcm2712 device tree on the boot partition, and the RP1 and
    SD controller modules inside the initramfs (the root is on the SD card behind them)."""
    image = build_image(tmp_path, test_data_dir, hardware="raspberry-pi-5", name="cortex-test-raspberry-pi-5")
    boot_part, root_part = partitions(image.img)["partitions"]
    expected = {"bcm2712-rpi-5-b.dtb", "vmlinuz", "initrd.img", "config.txt", "cmdline.txt"}
    assert {f"::/{name}" for name in expected} <= fat_paths(image.img, boot_part["start"])
    config = fat_file(image.img, boot_part["start"], "config.txt")
    assert {"arm_64bit=1", "kernel=vmlinuz", "initramfs initrd.img followkernel"} <= set(config.splitlines())
    assert "console=ttyAMA10,115200" in fat_file(image.img, boot_part["start"], "cmdline.txt")
    initrd = tmp_path / "initrd.img"
    subprocess.run(["mcopy", "-i", f"{image.img}@@{boot_part['start'] * 512}", "::/initrd.img", str(initrd)],
                   check=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}, timeout=120)  # fmt: skip
    listed = subprocess.run(["lsinitramfs", str(initrd)], capture_output=True, text=True, check=True, timeout=300)
    for module in ("rp1-pci.ko", "sdhci-brcmstb.ko", "clk-rp1.ko", "pinctrl-rp1.ko"):
        assert any(line.rsplit("/", 1)[-1].startswith(module) for line in listed.stdout.splitlines()), module
    kernel = debugfs(image.img, root_part["start"], "ls /usr/lib/modules")
    print(f"raspberry-pi-5: kernels {kernel.split()}")
