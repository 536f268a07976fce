"""`cortex models fit`'s GPU reading. No GPU is here: NVIDIA's is read from a machine tree laid out as the
driver lays it out and a stand-in `nvidia-smi` printing what the real one prints for the query we send
(its CSV, as in NVIDIA's nvidia-smi documentation); amdgpu's from sysfs files of the kernel's format."""

from __future__ import annotations

from pathlib import Path

from menlo_cortex.benchmark.gpus import NVIDIA_QUERY, gpus

MIB = 1024 * 1024


def nvidia_machine(root: Path, *models: str) -> Path:
    for number, model in enumerate(models):
        info = root / f"proc/driver/nvidia/gpus/0000:0{number}:00.0/information"
        info.parent.mkdir(parents=True)
        info.write_text(f"Model: \t\t {model}\nIRQ:   \t\t 42\n", encoding="utf-8")
    return root


def smi(tmp_path: Path, output: str, code: int = 0) -> str:
    """An nvidia-smi that answers our exact query only."""
    script = tmp_path / "nvidia-smi"
    query = " ".join(NVIDIA_QUERY)
    script.write_text(f'#!/bin/sh\n[ "$*" = "{query}" ] || exit 9\nprintf "{output}"\nexit {code}\n')
    script.chmod(0o755)
    return str(script)


def test_nvidia_gpus_with_their_memory_from_nvidia_smi(tmp_path: Path) -> None:
    root = nvidia_machine(tmp_path / "root", "NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3")
    output = "NVIDIA H100 80GB HBM3, 81559, 81004\\nNVIDIA H100 80GB HBM3, 81559, 1200\\n"
    found = gpus(root, smi(tmp_path, output))
    assert found == [
        {"name": "NVIDIA H100 80GB HBM3", "memory_total": 81559 * MIB, "memory_free": 81004 * MIB, "why_unknown": None},
        {"name": "NVIDIA H100 80GB HBM3", "memory_total": 81559 * MIB, "memory_free": 1200 * MIB, "why_unknown": None},
    ]


def test_an_nvidia_gpu_whose_memory_cannot_be_read_is_listed_with_the_reason(tmp_path: Path) -> None:
    root = nvidia_machine(tmp_path / "root", "Orin (nvgpu)")
    failing = gpus(root, smi(tmp_path, "NVIDIA-SMI has failed", code=9))
    assert failing == [{"name": "Orin (nvgpu)", "memory_total": None, "memory_free": None,
                        "why_unknown": "nvidia-smi failed (exit 9)"}]  # fmt: skip
    assert gpus(root, str(tmp_path / "absent"))[0]["why_unknown"] == "nvidia-smi could not run"
    unsupported = gpus(root, smi(tmp_path, "Orin, [N/A], [N/A]\\n"))
    assert unsupported[0] | {"name": "Orin"} == {"name": "Orin", "memory_total": None, "memory_free": None,
                                                 "why_unknown": "nvidia-smi reported no memory figures"}  # fmt: skip


def test_no_nvidia_driver_runs_no_nvidia_smi(tmp_path: Path) -> None:
    assert gpus(tmp_path, smi(tmp_path, "should not be asked", code=9)) == []


def test_amd_gpus_from_sysfs(tmp_path: Path) -> None:
    drivers = tmp_path / "sys/bus/pci/drivers"
    for name in ("amdgpu", "i915"):
        (drivers / name).mkdir(parents=True)
    cards = tmp_path / "sys/class/drm"
    for card, driver in (("card0", "amdgpu"), ("card1", "i915")):
        device = cards / card / "device"
        device.mkdir(parents=True)
        (device / "driver").symlink_to(drivers / driver)
    (cards / "card0-DP-1").mkdir()  # a connector of card0, whose device link leads to card0's device
    (cards / "card0-DP-1/device").symlink_to(cards / "card0/device")
    (cards / "card0/device/mem_info_vram_total").write_text(f"{16384 * MIB}\n")
    (cards / "card0/device/mem_info_vram_used").write_text(f"{1024 * MIB}\n")
    assert gpus(tmp_path, None) == [
        {"name": "card0 (amdgpu)", "memory_total": 16384 * MIB, "memory_free": 15360 * MIB, "why_unknown": None}
    ]


def test_this_machine_is_read_without_failing() -> None:
    found = gpus()
    assert all(set(gpu) == {"name", "memory_total", "memory_free", "why_unknown"} for gpu in found)
