"""`cortex models fit`'s GPU reading. No GPU is here: NVIDIA's is read from a machine tree laid out as the
driver lays it out and a stand-in `nvidia-smi` printing what the real one prints for the query we send
(its CSV, as in NVIDIA's nvidia-smi documentation); amdgpu's from sysfs files of the kernel's format."""

from __future__ import annotations

from pathlib import Path

import pytest
from menlo_cortex.benchmark import gpus as gpu_reading
from menlo_cortex.benchmark.gpus import NVIDIA_QUERY, gpus

MIB = 1024 * 1024
H100 = "NVIDIA H100 80GB HBM3"


def nvidia_machine(root: Path, *models: str) -> Path:
    for number, model in enumerate(models):
        info = root / f"proc/driver/nvidia/gpus/0000:0{number}:00.0/information"
        info.parent.mkdir(parents=True)
        info.write_text(f"Model: \t\t {model}\nIRQ:   \t\t 42\n", encoding="utf-8")
    return root


def smi(tmp_path: Path, output: str, code: int = 0, delay_s: int = 0) -> str:
    """An nvidia-smi that answers our exact query only (else exits 99), and leaves a mark that it ran."""
    script = tmp_path / "nvidia-smi"
    query = " ".join(NVIDIA_QUERY)
    script.write_text(f'#!/bin/sh\ntouch "{tmp_path}/asked"\n[ "$*" = "{query}" ] || exit 99\nsleep {delay_s}\n'
                      f'printf "{output}"\nexit {code}\n')  # fmt: skip
    script.chmod(0o755)
    return str(script)


def known(name: str, total_mib: int, free_mib: int) -> dict[str, object]:
    return {"name": name, "memory_total": total_mib * MIB, "memory_free": free_mib * MIB, "why_unknown": None}


def unknown(name: str, why: str) -> dict[str, object]:
    return {"name": name, "memory_total": None, "memory_free": None, "why_unknown": why}


def test_nvidia_gpus_with_their_memory_from_nvidia_smi(tmp_path: Path) -> None:
    root = nvidia_machine(tmp_path / "root", H100, H100)
    output = f"{H100}, 81559, 81004\\nNVIDIA RTX A6000, Ada, 1, 2\\n"  # a name with a comma
    assert gpus(root, smi(tmp_path, output)) == [known(H100, 81559, 81004), known("NVIDIA RTX A6000, Ada", 1, 2)]


def test_rows_printed_with_a_failing_exit_are_used(tmp_path: Path) -> None:
    """nvidia-smi exits non-zero on some warnings (a corrupted infoROM) while reporting every GPU."""
    root = nvidia_machine(tmp_path / "root", H100)
    assert gpus(root, smi(tmp_path, f"{H100}, 81559, 1200\\n", code=14)) == [known(H100, 81559, 1200)]


def test_an_nvidia_gpu_whose_memory_cannot_be_read_is_listed_with_the_reason(tmp_path: Path) -> None:
    root = nvidia_machine(tmp_path / "root", "Orin (nvgpu)")
    assert gpus(root, smi(tmp_path, "NVIDIA-SMI has failed\\n", code=9)) == [
        unknown("Orin (nvgpu)", "nvidia-smi failed (exit 9)")
    ]
    assert gpus(root, smi(tmp_path, "No devices were found\\n")) == [
        unknown("Orin (nvgpu)", "nvidia-smi did not report its memory")
    ]
    assert gpus(root, smi(tmp_path, "Orin, [N/A], [N/A]\\n")) == [
        unknown("Orin", "nvidia-smi reported no memory figures")
    ]
    assert gpus(root, str(tmp_path / "absent")) == [unknown("Orin (nvgpu)", "nvidia-smi could not run")]


def test_an_nvidia_smi_that_hangs_is_abandoned_at_its_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_reading, "NVIDIA_SMI_TIMEOUT_S", 0.5)
    root = nvidia_machine(tmp_path / "root", H100)
    assert gpus(root, smi(tmp_path, f"{H100}, 1, 1\\n", delay_s=30)) == [
        unknown(H100, "nvidia-smi did not answer in 0.5 s")
    ]


def test_no_nvidia_driver_runs_no_nvidia_smi(tmp_path: Path) -> None:
    assert gpus(tmp_path / "root", smi(tmp_path, f"{H100}, 1, 1\\n")) == []
    assert not (tmp_path / "asked").exists()


def test_a_name_is_printable(tmp_path: Path) -> None:
    root = nvidia_machine(tmp_path / "root", H100)
    assert gpus(root, smi(tmp_path, "Evil\\033[2J\\007GPU, 1, 1\\n"))[0]["name"] == "Evil[2JGPU"


def test_amd_gpus_from_sysfs(tmp_path: Path) -> None:
    drivers = tmp_path / "sys/bus/pci/drivers"
    for name in ("amdgpu", "i915"):
        (drivers / name).mkdir(parents=True)
    cards = tmp_path / "sys/class/drm"
    for card, driver in (("card0", "amdgpu"), ("card1", "i915"), ("card2", "amdgpu")):
        device = cards / card / "device"
        device.mkdir(parents=True)
        (device / "driver").symlink_to(drivers / driver)
    (cards / "card0-DP-1").mkdir()  # a connector of card0, whose device link leads to card0's device
    (cards / "card0-DP-1/device").symlink_to(cards / "card0/device")
    (cards / "card0/device/mem_info_vram_total").write_text(f"{16384 * MIB}\n")
    (cards / "card0/device/mem_info_vram_used").write_text(f"{1024 * MIB}\n")
    (cards / "card2/device/product_name").write_text("Radeon 780M\n")
    assert gpus(tmp_path, None) == [
        known("card0 (amdgpu)", 16384, 15360),
        unknown("Radeon 780M", "amdgpu exposes no VRAM figures"),
    ]


def test_this_machine_is_read_without_failing() -> None:
    found = gpus()
    assert all(set(gpu) == {"name", "memory_total", "memory_free", "why_unknown"} for gpu in found)
