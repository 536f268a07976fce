"""The GPUs of this machine and their memory, for `cortex models fit`.

NVIDIA's driver tells memory only through NVML: `nvidia-smi` is its command-line face and ships with every
driver, so it is asked (bounded in time) rather than linking NVML here. amdgpu exposes VRAM in sysfs. A GPU
whose memory cannot be read is still listed, with its memory unknown and the reason.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
NVIDIA_SMI_TIMEOUT_S = 10.0
NVIDIA_QUERY = ("--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits")


def gpus(root: Path = Path("/"), nvidia_smi: str | None = None) -> list[dict[str, Any]]:
    """Each GPU: name, memory_total and memory_free in bytes (None when unknown) and, when unknown, why."""
    return _nvidia(root, nvidia_smi or shutil.which("nvidia-smi")) + _amd(root)


def _nvidia(root: Path, command: str | None) -> list[dict[str, Any]]:
    names = [_driver_model(info) for info in sorted((root / "proc/driver/nvidia/gpus").glob("*/information"))]
    if not names:
        return []
    if command is None:
        return [_unknown(name, "nvidia-smi is not installed") for name in names]
    try:
        done = subprocess.run([command, *NVIDIA_QUERY], capture_output=True, text=True,
                              timeout=NVIDIA_SMI_TIMEOUT_S, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        why = "nvidia-smi timed out" if isinstance(exc, subprocess.TimeoutExpired) else "nvidia-smi could not run"
        return [_unknown(name, why) for name in names]
    if done.returncode != 0:
        return [_unknown(name, f"nvidia-smi failed (exit {done.returncode})") for name in names]
    return [row for line in done.stdout.splitlines() if line.strip() for row in [_smi_row(line)]]


def _smi_row(line: str) -> dict[str, Any]:
    name, total, free = ([""] * 3 + [field.strip() for field in line.rsplit(",", 2)])[-3:]
    if not (total.isdigit() and free.isdigit()):
        return _unknown(name or "NVIDIA GPU", "nvidia-smi reported no memory figures")
    return {"name": name[:120] or "NVIDIA GPU", "memory_total": int(total) * MIB, "memory_free": int(free) * MIB,
            "why_unknown": None}  # fmt: skip


def _amd(root: Path) -> list[dict[str, Any]]:
    found = []
    for device in sorted((root / "sys/class/drm").glob("card[0-9]*/device")):
        if device.parent.name.count("-") or (device / "driver").resolve().name != "amdgpu":
            continue  # card0-DP-1 and the like are connectors of a card, not cards
        name = _read(device / "product_name") or f"{device.parent.name} (amdgpu)"
        total, used = _read(device / "mem_info_vram_total"), _read(device / "mem_info_vram_used")
        if not (total.isdigit() and used.isdigit()):
            found.append(_unknown(name, "amdgpu exposes no VRAM figures"))
            continue
        found.append({"name": name[:120], "memory_total": int(total), "memory_free": int(total) - int(used),
                      "why_unknown": None})  # fmt: skip
    return found


def _driver_model(info: Path) -> str:
    line = next((line for line in _read(info).splitlines() if line.startswith("Model:")), "Model: NVIDIA GPU")
    return line.split(":", 1)[1].strip()[:120]


def _unknown(name: str, why: str) -> dict[str, Any]:
    return {"name": name[:120], "memory_total": None, "memory_free": None, "why_unknown": why}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
