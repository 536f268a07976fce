"""The Raspberry Pi's slot choice on the real boot loader: Debian's U-Boot (u-boot-qemu's qemu_arm64 build, the same
sources as u-boot-rpi) runs the boot.scr a Raspberry Pi disk image carries, from the image's own GPT boot partition,
under qemu-system-aarch64 -M virt. Each qemu run is one power-on; the slots' kernels are stand-ins, so booti fails
and the script's own fallback shows. The update agent's side writes the files (runtime/update/uboot.py); mtools
puts them into the image as a mounted partition would get them."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from menlo_cortex.images.targets.disk.layout import BootFile, Sizes, make_disk
from menlo_cortex.images.targets.disk.render import BOOT_SCRIPT_SOURCE, render
from menlo_cortex.images.targets.disk.uboot_script import script_image
from menlo_cortex.runtime.update import uboot

from .conftest import GOLDEN, plan_for
from .fixtures import _MTOOLS, fat_paths, partitions

pytestmark = [pytest.mark.vm, pytest.mark.timeout(600)]
U_BOOT = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")
PARTUUID_B = "22222222-2222-4222-8222-222222222222"
OPTIONS = "rw rootwait fsck.repair=yes panic=30 console=tty0 console=ttyS1,115200"  # the Pi 4 golden case's
KERNEL_COMMAND_LINE = "Kernel command line: "
SCRIPT_DONE = ("resetting", "=> ", KERNEL_COMMAND_LINE)
POWER_ON_S = 180


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("qemu-system-aarch64") is None or not U_BOOT.is_file() or shutil.which("mcopy") is None:
        pytest.skip("needs qemu-system-arm, u-boot-qemu and mtools (scripts/setup.sh installs them)")
    work = tmp_path_factory.mktemp("uboot")
    plan = plan_for(GOLDEN / "raspberry-pi-4-wifi" / "Cortexfile.yaml")
    assert plan.boot_options == OPTIONS
    rendered = render(plan, "0" * 64)
    boot = {name: BootFile(None, text) for name, text in rendered.boot.items()}
    boot["boot.scr"] = BootFile(None, data=script_image(rendered.boot[BOOT_SCRIPT_SOURCE], 0))
    boot |= {f"cortex/a/{name}": BootFile(None, f"stand-in {name} a\n") for name in ("vmlinuz", "initrd.img")}
    root, data = work / "root", work / "data"
    for folder in (root / "etc", data):
        folder.mkdir(parents=True)
    return make_disk(plan, root, boot, work, sizes=Sizes(16, 16, 16), epoch=0, data=data)


def power_on(disk: Path, machine: list[str] | None = None) -> list[str]:
    """One boot: the script's lines and the kernel's command line, until the kernel printed it, the script reset
    (-no-reboot ends qemu) or U-Boot's prompt came (the script returned). `machine`: qemu's options for another board
    than -M virt with u-boot-qemu's U-Boot on a virtio disk."""
    command = ["qemu-system-aarch64", "-no-reboot", "-nic", "none", *(machine or [
        "-M", "virt", "-cpu", "cortex-a57", "-m", "512", "-nographic", "-bios", str(U_BOOT),
        "-drive", f"if=none,file={disk},format=raw,id=disk", "-device", "virtio-blk-device,drive=disk"])]  # fmt: skip
    lines: list[str] = []
    deadline = time.monotonic() + POWER_ON_S
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          errors="replace") as vm:  # fmt: skip
        try:
            assert vm.stdout is not None
            for line in vm.stdout:
                marker = next((m for m in (KERNEL_COMMAND_LINE, "cortex: ") if m in line), None)
                if marker is not None:
                    lines.append(line[line.index(marker) :].rstrip())
                if any(done in line for done in SCRIPT_DONE) or time.monotonic() > deadline:
                    break
        finally:
            vm.kill()
    return lines


def put(disk: Path, files: dict[str, Path]) -> None:
    start = partitions(disk)["partitions"][0]["start"] * 512
    for name, source in files.items():
        folder = ["mmd", "-i", f"{disk}@@{start}", f"::/{Path(name).parent}"]
        subprocess.run(folder, check=False, capture_output=True, env=_MTOOLS, timeout=60)  # fails when it exists
        command = ["mcopy", "-o", "-i", f"{disk}@@{start}", str(source), f"::/{name}"]
        subprocess.run(command, check=True, env=_MTOOLS, timeout=60)


def test_a_new_slot_boots_once_then_the_kept_one_until_its_check_keeps_it(disk: Path, tmp_path: Path) -> None:
    root_a = plan_for(GOLDEN / "raspberry-pi-4-wifi" / "Cortexfile.yaml").ids.root_partition
    command_line = f"cortex: command line root=PARTUUID={{}} {OPTIONS} cortex.slot={{}}"
    assert power_on(disk) == [
        "cortex: booting slot a (version 0)",
        command_line.format(root_a, "a"),
        "cortex: slot a did not boot; slot b (version ) instead",  # none there: never U-Boot's own (network) boot
        "cortex: no slot booted; resetting",
    ]

    staged = uboot.UBootOnce(tmp_path)  # what the update agent writes on the mounted boot partition
    staged.add_entry("b", "1.1.0", PARTUUID_B, OPTIONS)
    for name in ("vmlinuz", "initrd.img"):
        (tmp_path / "cortex/b" / name).write_text(f"stand-in {name} b\n")
    put(disk, {f"cortex/b/{p.name}": p for p in sorted((tmp_path / "cortex/b").iterdir())})
    put(disk, {uboot.TRY: tmp_path / uboot.TRY})
    assert power_on(disk) == [
        "cortex: trying slot b (version 1.1.0) once; the kept slot is a",
        command_line.format(PARTUUID_B, "b"),
        "cortex: slot b did not boot; resetting into slot a",
    ]
    start = partitions(disk)["partitions"][0]["start"]
    assert f"::/{uboot.TRY}" not in fat_paths(disk, start)  # taken before the try: a second power-on is a's
    assert power_on(disk)[0::2] == [  # a does not boot (a stand-in kernel): b, which holds a version, instead
        "cortex: booting slot a (version 0)",
        "cortex: slot a did not boot; slot b (version 1.1.0) instead",
    ]

    staged.bless("b")  # the check kept it
    put(disk, {uboot.KEPT: tmp_path / uboot.KEPT})
    assert power_on(disk)[0] == "cortex: booting slot b (version 1.1.0)"
