"""arm64 device images on real parts (`make test-arm64`; too slow for CI's budget under emulation):
the arm64 UEFI image booted under qemu-system-aarch64 -M virt with UEFI firmware, answering a chat
completion; the Raspberry Pi 4 image's partition table and boot files, then the image on qemu's raspi3b board as a
Pi starts it (its own U-Boot): booted whole, its self-check answering a chat completion on the serial console, and
its slots tried and kept; the Raspberry Pi 5 image's boot files and initramfs (qemu has no Pi 5 board)."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from menlo_cortex.runtime.update import uboot

from tests.conftest import find_free_port

from .conftest import plan_for
from .fixtures import (
    GUEST_PORT,
    Image,
    Ssh,
    build_image,
    debugfs,
    disk_copy,
    fat_copy,
    fat_file,
    fat_paths,
    needs_image_tools,
    partitions,
)
from .qemu import RASPI3B_KERNEL_ARGS, boot, boot_raspi3b, raspi3b
from .test_boot import first_chat
from .test_uboot_slots import power_on, put

pytestmark = [pytest.mark.arm64, pytest.mark.slow, pytest.mark.vm, pytest.mark.timeout(7200)]
PI4_BOOT_FILES = ("cortex/a/vmlinuz", "cortex/a/initrd.img", "bcm2711-rpi-4-b.dtb")
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


@pytest.fixture(scope="module")
def pi4_image(tmp_path_factory: pytest.TempPathFactory, test_data_dir: Path) -> Image:
    folder = tmp_path_factory.mktemp("pi4")
    started = time.monotonic()
    image = build_image(folder, test_data_dir, hardware="raspberry-pi-4", name="cortex-test-raspberry-pi-4")
    print(f"raspberry-pi-4 image built in {time.monotonic() - started:.0f}s")
    return image


def test_raspberry_pi_4_image_layout(pi4_image: Image) -> None:
    """GPT with the A/B layout; the firmware starts U-Boot, whose boot.scr boots slot a (tests/images/disk/
    test_uboot_slots.py runs that script on U-Boot)."""
    image = pi4_image
    plan = plan_for(image.cortexfile)
    table = partitions(image.img)
    assert (table["label"], table["id"].lower()) == ("gpt", plan.ids.disk)
    boot_part, root_part, _, _ = table["partitions"]
    assert [part["name"] for part in table["partitions"]] == ["cortex-esp", "cortex-a", "cortex-b", "cortex-data"]
    expected = {"start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "config.txt", "u-boot.bin", "boot.scr",
                "cortex/slot.txt", "cortex/a/vmlinuz", "cortex/a/initrd.img", "cortex/a/boot.txt"}  # fmt: skip
    assert {f"::/{name}" for name in expected} <= fat_paths(image.img, boot_part["start"])
    entry = fat_file(image.img, boot_part["start"], "cortex/a/boot.txt")
    assert f"bootargs=root=PARTUUID={plan.ids.root_partition} " in entry
    assert "console=ttyS1,115200 cortex.slot=a" in entry
    config = fat_file(image.img, boot_part["start"], "config.txt")
    assert {"arm_64bit=1", "kernel=u-boot.bin"} <= set(config.splitlines())
    fstab = debugfs(image.img, root_part["start"], "cat /etc/fstab")
    assert "PARTLABEL=cortex-esp\t/boot/firmware\tvfat" in fstab
    hooks = debugfs(image.img, root_part["start"], "ls /etc/kernel/postinst.d")
    assert "z50-raspi-firmware" not in hooks  # it would make /boot/firmware boot one kernel, not the slots


@dataclass(frozen=True)
class Pi3Board:
    """The Pi 4 image on qemu's raspi3b board: its SD card (a copy), its own U-Boot and the Pi 3's device tree
    from its kernel package (the firmware's part: qemu has no VideoCore firmware)."""

    card: Path
    u_boot: Path
    device_tree: Path
    boot_start: int

    def machine(self) -> list[str]:
        return raspi3b(self.u_boot, self.device_tree, self.card)


def pi3_board(image: Image, folder: Path) -> Pi3Board:
    img = image.img
    boot_start, root_start = (part["start"] for part in partitions(img)["partitions"][:2])
    card = disk_copy(img, folder / "sd.img")
    with card.open("r+b") as file:  # qemu takes only SD cards whose size is a power of two
        file.truncate(1 << (card.stat().st_size - 1).bit_length())
    u_boot = fat_copy(img, boot_start, "u-boot.bin", folder / "u-boot.bin")
    listing = debugfs(img, root_start, "ls /usr/lib/modules").split()  # inode (length) name ...
    release = next(name for name in listing if re.fullmatch(r"[0-9]+\.[0-9]+\S*", name))
    tree = folder / "bcm2837-rpi-3-b.dtb"
    debugfs(img, root_start, f"dump /usr/lib/linux-image-{release}/broadcom/{tree.name} {tree}")
    return Pi3Board(card, u_boot, tree, boot_start)


def test_raspberry_pi_4_image_boots_and_answers_on_its_console(pi4_image: Image, tmp_path: Path) -> None:
    """The whole boot, as a Pi starts the image: its U-Boot, boot.scr, slot a's kernel and initramfs, systemd,
    the first boot, the service; `cortex.selfcheck` (and what qemu's board needs, qemu.py) added to slot a's
    command line on the card. The emulated board has no network, so the console is all there is: the key notice
    (the key itself never goes to a serial console), then the self-check's chat completion. qemu's raspi3b, not
    raspi4b: qemu 10's Pi 4 board stalled after systemd started (its SD controller's interrupts, then its timers:
    issue 28), and Debian 12's qemu 7.2 has the Pi 3 board, whose Cortex-A53s run the same arm64 kernel."""
    board = pi3_board(pi4_image, tmp_path)
    entry = fat_file(board.card, board.boot_start, "cortex/a/boot.txt")
    assert " cortex.slot=a\n" in entry
    extended = entry.replace(" cortex.slot=a\n", f" cortex.slot=a cortex.selfcheck {RASPI3B_KERNEL_ARGS}\n")
    (tmp_path / "boot.txt").write_text(extended, encoding="utf-8")
    put(board.card, {"cortex/a/boot.txt": tmp_path / "boot.txt"})
    started = time.monotonic()
    with boot_raspi3b(board.u_boot, board.device_tree, board.card) as vm:
        vm.wait_for_key_notice(FIRST_ANSWER_S)
        print(f"raspberry-pi-4 image on raspi3b: key notice {time.monotonic() - started:.0f}s after power-on")
        vm.wait_for("cortex-selfcheck: the service is ready", FIRST_ANSWER_S)
        answer = vm.wait_for("cortex-selfcheck: chat completion from", FIRST_ANSWER_S)
        print(f"raspberry-pi-4 image on raspi3b: {time.monotonic() - started:.0f}s after power-on: {answer}")
        assert "FAILED" not in vm.console_text()
        assert vm.api_keys_shown() == []


def test_raspberry_pi_4_image_boots_its_slots_through_its_own_u_boot(pi4_image: Image, tmp_path: Path) -> None:
    """The image's own U-Boot (u-boot-rpi's rpi_arm64 build, for the Pi 3, 4 and 5) on qemu's raspi3b board: it
    boots slot a's kernel with a's command line; once try.txt names slot b (its files written as the update agent
    writes them), b once, then a again."""
    img = pi4_image.img
    plan = plan_for(pi4_image.cortexfile)
    board = pi3_board(pi4_image, tmp_path)
    card, boot_start, machine = board.card, board.boot_start, board.machine()
    slot_a = f"root=PARTUUID={plan.ids.root_partition} {plan.boot_options} cortex.slot=a"
    slot_b = f"root=PARTUUID={plan.ids.other_root_partition} {plan.boot_options} cortex.slot=b"
    kept = power_on(card, machine)
    assert kept[0].startswith("cortex: booting slot a (version ")
    assert kept[1:] == [f"cortex: command line {slot_a}", f"Kernel command line: {slot_a}"]

    staged = uboot.UBootOnce(tmp_path / "staged")  # what the update agent writes on the mounted boot partition
    staged.add_entry("b", "9.9.9", plan.ids.other_root_partition, plan.boot_options)
    for name in ("vmlinuz", "initrd.img"):
        fat_copy(img, boot_start, f"cortex/a/{name}", tmp_path / "staged/cortex/b" / name)
    put(card, {f"cortex/b/{p.name}": p for p in sorted((tmp_path / "staged/cortex/b").iterdir())})
    put(card, {uboot.TRY: tmp_path / "staged" / uboot.TRY})
    assert power_on(card, machine) == [
        "cortex: trying slot b (version 9.9.9) once; the kept slot is a",
        f"cortex: command line {slot_b}",
        f"Kernel command line: {slot_b}",
    ]
    assert power_on(card, machine)[1:] == [f"cortex: command line {slot_a}", f"Kernel command line: {slot_a}"]


def test_raspberry_pi_5_image_from_debians_archive(tmp_path: Path, test_data_dir: Path) -> None:
    """Debian 13 with trixie-backports' kernel: the bcm2712 device tree on the boot partition, and the RP1 and
    SD controller modules inside the initramfs (the root is on the SD card behind them)."""
    image = build_image(tmp_path, test_data_dir, hardware="raspberry-pi-5", name="cortex-test-raspberry-pi-5")
    boot_part, root_part, _, _ = partitions(image.img)["partitions"]
    expected = {"bcm2712-rpi-5-b.dtb", "config.txt", "u-boot.bin", "boot.scr", "cortex/a/vmlinuz",
                "cortex/a/initrd.img", "cortex/a/boot.txt"}  # fmt: skip
    assert {f"::/{name}" for name in expected} <= fat_paths(image.img, boot_part["start"])
    config = fat_file(image.img, boot_part["start"], "config.txt")
    assert {"arm_64bit=1", "kernel=u-boot.bin", "device_tree=bcm2712-rpi-5-b.dtb"} <= set(config.splitlines())
    assert "console=ttyAMA10,115200" in fat_file(image.img, boot_part["start"], "cortex/a/boot.txt")
    initrd = fat_copy(image.img, boot_part["start"], "cortex/a/initrd.img", tmp_path / "initrd.img")
    listed = subprocess.run(["lsinitramfs", str(initrd)], capture_output=True, text=True, check=True, timeout=300)
    held = {line.rsplit("/", 1)[-1].split(".ko")[0].replace("-", "_") for line in listed.stdout.splitlines()}
    assert {"rp1_pci", "sdhci_brcmstb", "clk_rp1", "pinctrl_rp1"} <= held  # modprobe's names: - and _ alike
    listing = debugfs(image.img, root_part["start"], "ls /usr/lib/modules").split()
    print(f"raspberry-pi-5: kernels {[name for name in listing if name[:1].isdigit() and '.' in name]}")
