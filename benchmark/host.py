"""The hardware and software a run measured on: CPU, memory, accelerators, kernel, versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

from menlo_cortex import __version__

FLAGS_OF_NOTE = ("avx", "avx2", "avx512f", "avx512_vnni", "avx_vnni", "f16c", "fma", "amx_int8",
                 "neon", "asimd", "asimddp", "sve", "sve2", "i8mm", "fphp", "asimdhp")  # fmt: skip


def host_facts() -> dict[str, object]:
    cpu = _cpuinfo()
    return {
        "cpu_model": cpu.get("model name") or cpu.get("Model") or cpu.get("CPU part") or platform.processor(),
        "cpu_flags": sorted(set((cpu.get("flags") or cpu.get("Features") or "").split()) & set(FLAGS_OF_NOTE)),
        "cores": len(os.sched_getaffinity(0)),
        "memory_bytes": _mem_total(),
        "accelerators": accelerators(),
        "architecture": platform.machine(),
        "kernel": platform.release(),
        "os": _os_name(),
        "cortex_version": __version__,
        "llama_cpp_python_version": _version("llama-cpp-python"),
    }


def accelerators(root: Path = Path("/")) -> list[str]:
    """GPUs the kernel exposes: NVIDIA by its driver's model names, others by their DRM render nodes."""
    found = nvidia_models(root)
    for node in sorted((root / "sys/class/drm").glob("renderD*")):
        driver = (node / "device" / "driver").resolve().name
        if driver != "nvidia":
            found.append(f"{node.name} ({driver})")
    return found


def nvidia_models(root: Path = Path("/")) -> list[str]:
    """The NVIDIA driver's GPUs, by the model names it reports."""
    found = []
    for info in sorted((root / "proc/driver/nvidia/gpus").glob("*/information")):
        model = next((line for line in read_text(info).splitlines() if line.startswith("Model:")), "Model: NVIDIA GPU")
        found.append(model.split(":", 1)[1].strip())
    return found


def _cpuinfo() -> dict[str, str]:
    facts: dict[str, str] = {}
    for line in read_text(Path("/proc/cpuinfo")).splitlines():
        key, _, value = line.partition(":")
        facts.setdefault(key.strip(), value.strip())
    return facts


def _mem_total() -> int | None:
    for line in read_text(Path("/proc/meminfo")).splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def _os_name() -> str:
    for line in read_text(Path("/etc/os-release")).splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system()


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
