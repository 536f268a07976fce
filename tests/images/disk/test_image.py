"""The disk image `cortex build --format disk` writes, read without booting: partition table, boot
files, the root file system's content, reproducibility, the block map, and the outputs of a failed build."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from menlo_cortex.images.debian import PYTHONS, SUITE
from menlo_cortex.images.targets.disk.layout import ESP_TYPE, LINUX_TYPE, ROOT_TYPES

from tests.conftest import TEST_MODEL_SHA256

from ..spdx import spdx_problems
from .conftest import load_disk, plan_for
from .fixtures import SECTOR, VERSION, Image, debugfs, fat_file, fat_paths, partitions, run_build, write_cortexfile

pytestmark = pytest.mark.slow


def test_partition_table_and_boot_files(device_image: Image) -> None:
    """A/B: the EFI system partition, slot a (the root), an empty slot b as large, and the data partition last."""
    plan = plan_for(device_image.cortexfile)
    table = partitions(device_image.img)
    assert table["label"] == "gpt"
    assert str(table["id"]).lower() == plan.ids.disk
    esp, slot_a, slot_b, data = table["partitions"]
    assert [p.get("name") for p in (esp, slot_a, slot_b, data)] == ["cortex-esp", "cortex-a", "cortex-b", "cortex-data"]
    assert (esp["type"], esp["uuid"].lower()) == (ESP_TYPE, plan.ids.boot_partition)
    assert (slot_a["type"], slot_a["uuid"].lower()) == (ROOT_TYPES["amd64"], plan.ids.root_partition)
    assert (slot_b["type"], slot_b["uuid"].lower()) == (ROOT_TYPES["amd64"], plan.ids.other_root_partition)
    assert slot_a["size"] == slot_b["size"]
    assert (data["type"], data["uuid"].lower()) == (LINUX_TYPE, plan.ids.data_partition)
    expected = {"::/EFI/BOOT/BOOTX64.EFI", "::/cortex/a/vmlinuz", "::/cortex/a/initrd.img",
                "::/loader/entries/cortex-a.conf"}  # fmt: skip
    assert expected <= fat_paths(device_image.img, esp["start"])
    entry = fat_file(device_image.img, esp["start"], "loader/entries/cortex-a.conf")
    assert f"version {VERSION}\n" in entry
    assert f"options root=PARTUUID={plan.ids.root_partition} rw" in entry
    assert "console=tty0 console=ttyS0,115200 cortex.slot=a" in entry
    assert "editor no" in fat_file(device_image.img, esp["start"], "loader/loader.conf")
    with device_image.img.open("rb") as disk:  # nothing in slot b yet (and nothing stored: a hole)
        disk.seek(slot_b["start"] * SECTOR)
        assert disk.read(4 << 20) == bytes(4 << 20)
    listing = debugfs(device_image.img, data["start"], "ls -l /cortex")
    assert "upper" in listing
    assert "work" in listing
    assert {"sync", "update", "cortex"} <= set(debugfs(device_image.img, data["start"], "ls /").split())


def test_root_holds_the_service_and_no_shared_secrets(device_image: Image) -> None:
    start = partitions(device_image.img)["partitions"][1]["start"]
    img = device_image.img
    assert debugfs(img, start, "cat /etc/cortex/Cortexfile.yaml") == device_image.cortexfile.read_text()
    assert debugfs(img, start, "cat /etc/hostname") == "cortex-test\n"
    assert debugfs(img, start, "cat /etc/machine-id") == ""  # each flashed copy makes its own
    os_release = debugfs(img, start, "cat /usr/lib/os-release").splitlines()
    assert os_release[-2:] == ["IMAGE_ID=cortex-x86-64-uefi", f"IMAGE_VERSION={VERSION}"]
    assert "ssh_host_" not in debugfs(img, start, "ls /etc/ssh")  # first boot makes each copy's host keys
    assert "api-keys" not in debugfs(img, start, "ls /etc/cortex")  # never a key every copy shares
    assert f"{TEST_MODEL_SHA256}.gguf" in debugfs(img, start, "ls /var/lib/cortex/models")
    wants = debugfs(img, start, "ls /etc/systemd/system/multi-user.target.wants")
    expected = {"cortex.service", "cortex-sync.service", "cortex-firstboot.service", "ssh.service",
                "cortex-update-check.service"}  # fmt: skip
    assert expected | {"systemd-networkd.service"} <= set(wants.split())
    assert "cortex-update.timer" in debugfs(img, start, "ls /etc/systemd/system/timers.target.wants")
    assert {"git", "zstd"} <= set(
        debugfs(img, start, "ls /usr/bin").split()
    )  # what cortex sync runs, added for the sync section
    unit = debugfs(img, start, "cat /etc/systemd/system/cortex.service")
    assert "start --defaults disk -f /etc/cortex/Cortexfile.yaml" in unit
    for image in (img, device_image.sibling(".img.zst")):  # its config (and any Wi-Fi key) for the builder only
        assert stat.S_IMODE(image.stat().st_mode) == 0o600


def test_the_same_inputs_give_the_same_bytes(device_image: Image, tmp_path: Path, test_data_dir: Path) -> None:
    again = run_build(device_image.cortexfile, tmp_path / "again", test_data_dir, cortex=device_image.command)
    assert again.returncode == 0, again.stderr[-2000:]
    first = device_image.sibling(".sha256").read_text()
    assert (tmp_path / "again" / device_image.sibling(".sha256").name).read_text() == first


def test_the_sbom_lists_what_the_image_holds(device_image: Image) -> None:
    assert spdx_problems(device_image.sibling(".spdx.json")) == []
    document = json.loads(device_image.sibling(".spdx.json").read_text())
    assert document["spdxVersion"] == "SPDX-2.3"
    names = {package["name"]: package for package in document["packages"]}
    python = f"python{PYTHONS[SUITE]}"  # the default release's, which the image is built on
    assert {"systemd", "linux-image-amd64", python, "llama_cpp_python", "menlo-cortex"} <= set(names)
    assert f"distro=debian-{SUITE}" in names["systemd"]["externalRefs"][0]["referenceLocator"]
    model = next(package for package in document["packages"] if package["SPDXID"].startswith("SPDXRef-model-"))
    assert model["checksums"][0]["checksumValue"] == TEST_MODEL_SHA256


def test_checksums_and_bmaptool_copy_reproduce_the_image(device_image: Image, tmp_path: Path) -> None:
    check = subprocess.run(["sha256sum", "-c", device_image.sibling(".sha256").name], cwd=device_image.folder,
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert len(check.stdout.splitlines()) == 4  # the image, its compressed copy, its block map, its SBOM
    flashed = tmp_path / "flashed.img"
    command = ["bmaptool", "-q", "copy", "--bmap", str(device_image.sibling(".img.bmap"))]
    subprocess.run([*command, str(device_image.sibling(".img.zst")), str(flashed)], check=True, timeout=900)
    assert subprocess.run(["cmp", str(flashed), str(device_image.img)], check=False).returncode == 0


def test_a_failed_build_leaves_no_output(device_image: Image, tmp_path: Path, test_data_dir: Path) -> None:
    cortexfile = write_cortexfile(tmp_path, device_image.ssh_key, extra="  image_size_mb: 1024\n")
    out = tmp_path / "out"
    done = run_build(cortexfile, out, test_data_dir)
    assert done.returncode == 2, done.stderr
    assert "device.image_size_mb: 1024 MiB is smaller than the image's content" in done.stderr
    assert sorted(os.listdir(out)) == []
    assert load_disk(cortexfile).config.device.image_size_mb == 1024
