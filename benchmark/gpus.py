"""The GPUs of this machine and their memory, for `cortex models fit`.

NVIDIA's driver tells memory only through NVML: `nvidia-smi` is its command-line face and ships with every
driver, so it is asked (bounded in time) rather than linking NVML here. amdgpu exposes VRAM in sysfs. A GPU
whose memory cannot be read is still listed, with its memory unknown and the reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from .host import nvidia_models, read_text

MIB = 1024 * 1024
NVIDIA_SMI_TIMEOUT_S = 10.0
NVIDIA_QUERY = ("--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits")
MAX_OUTPUT = 64 * 1024  # bytes of nvidia-smi's answer read: a line per GPU
CARD = re.compile(r"^card\d+$")  # card0, not its connectors (card0-DP-1)
NAME_CHARACTERS = 120


def gpus(root: Path = Path("/"), nvidia_smi: str | None = None) -> list[dict[str, Any]]:
    """Each GPU: name, memory_total and memory_free in bytes (None when unknown) and, when unknown, why."""
    return _nvidia(root, nvidia_smi or shutil.which("nvidia-smi")) + _amd(root)


def _nvidia(root: Path, command: str | None) -> list[dict[str, Any]]:
    names = nvidia_models(root)
    if not names:
        return []
    if command is None:
        return [_unknown(name, "nvidia-smi is not installed") for name in names]
    answer, why = _ask(command)
    rows = [row for line in answer.splitlines() if (row := _smi_row(line)) is not None]
    if len(rows) != len(names):  # a warning line, a GPU it could not read: trust only the driver's list
        return [_unknown(name, why or "nvidia-smi did not report its memory") for name in names]
    return rows


def _ask(command: str) -> tuple[str, str | None]:
    """nvidia-smi's answer, and why it is not one. A driver that hangs leaves nvidia-smi unkillable (in the
    kernel): after the timeout it is abandoned to a reaper thread rather than waited for."""
    try:
        process = subprocess.Popen([command, *NVIDIA_QUERY], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    except OSError:
        return "", "nvidia-smi could not run"
    try:
        output, _ = process.communicate(timeout=NVIDIA_SMI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        if process.stdout is not None:
            process.stdout.close()
        threading.Thread(target=process.wait, name="cortex-nvidia-smi-reaper", daemon=True).start()
        return "", f"nvidia-smi did not answer in {NVIDIA_SMI_TIMEOUT_S:g} s"
    why = None if process.returncode == 0 else f"nvidia-smi failed (exit {process.returncode})"
    return output[:MAX_OUTPUT].decode("utf-8", "replace"), why


def _smi_row(line: str) -> dict[str, Any] | None:
    """One GPU's line (`name, total MiB, free MiB`); None for any other line."""
    fields = [field.strip() for field in line.rsplit(",", 2)]
    if len(fields) != 3 or not fields[0]:
        return None
    name, total, free = fields
    if not (total.isdecimal() and free.isdecimal()):
        return _unknown(name, "nvidia-smi reported no memory figures")  # [N/A]: a Jetson's shared memory, say
    return _known(name, int(total) * MIB, int(free) * MIB)


def _amd(root: Path) -> list[dict[str, Any]]:
    found = []
    for device in sorted((root / "sys/class/drm").glob("card*/device")):
        if not CARD.match(device.parent.name) or (device / "driver").resolve().name != "amdgpu":
            continue
        name = read_text(device / "product_name").strip() or f"{device.parent.name} (amdgpu)"
        total, used = (read_text(device / f"mem_info_vram_{kind}").strip() for kind in ("total", "used"))
        if not (total.isdecimal() and used.isdecimal()):
            found.append(_unknown(name, "amdgpu exposes no VRAM figures"))
            continue
        found.append(_known(name, int(total), max(0, int(total) - int(used))))
    return found


def _known(name: str, total: int, free: int) -> dict[str, Any]:
    return {"name": _printable(name), "memory_total": total, "memory_free": free, "why_unknown": None}


def _unknown(name: str, why: str) -> dict[str, Any]:
    return {"name": _printable(name), "memory_total": None, "memory_free": None, "why_unknown": why}


def _printable(name: str) -> str:
    """A name from a card's EEPROM or a tool's output, safe to print on a terminal."""
    return "".join(character for character in name if character.isprintable())[:NAME_CHARACTERS] or "GPU"
