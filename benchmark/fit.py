"""`cortex models fit`: for each model of a Cortexfile, the memory it takes here (weights, KV cache at its context
and slots, llama.cpp's buffers: the runtime's own plan), whether that fits this machine, and the generation
speed its memory bandwidth allows.

The estimate of tokens/s is bandwidth over the bytes one token reads: every weight, and the KV cache of a half
full context. It ignores compute, so it is an upper bound where the model is small and its vocabulary large.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from menlo_cortex.cortexfile.data_folder import data_dir, find_local
from menlo_cortex.cortexfile.schema import Cortexfile, Model
from menlo_cortex.runtime.models.batching.plan import SlotPlan, available_memory, memory_room, plan_slots, read_shape

from .bandwidth import cache_file, memory_bandwidth
from .host import accelerators, host_facts

MIB = 1024 * 1024
# `cortex start` itself with no model: Python, the server and llama.cpp's libraries (74 MiB resident, measured
# on x86-64 with Python 3.11), counted once beside each model when deciding whether it fits.
SERVER_BYTES = 80 * MIB


@dataclass(frozen=True)
class Machine:
    cpu_model: str
    cores: int
    cpu_flags: list[str]
    memory_total: int
    memory_available: int  # MemAvailable, or less under a cgroup limit
    accelerators: list[str]
    bandwidth: float | None  # bytes/s; None: not measured (numpy missing)
    bandwidth_measured_now: bool


def this_machine(environ: Mapping[str, str] | None = None) -> Machine:
    facts = host_facts()
    cpu_model, cores, memory = str(facts["cpu_model"]), int(str(facts["cores"])), int(str(facts["memory_bytes"] or 0))
    bandwidth, now = memory_bandwidth(f"{cpu_model}|{cores}|{memory}", cache_file(dict(environ or os.environ)))
    flags = facts["cpu_flags"]
    return Machine(cpu_model, cores, list(flags) if isinstance(flags, list) else [], memory, available_memory(),
                   accelerators(), bandwidth, now)  # fmt: skip


def fit_models(config: Cortexfile, machine: Machine, environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Each model's estimate, those that fit first, faster first."""
    store = data_dir(config, environ)
    rows = [_fit(model, find_local(model, store), config, machine) for model in config.models]
    return sorted(rows, key=lambda row: (not row["fits"], -(row["tokens_per_s"] or 0.0)))


def _fit(model: Model, path: Path | None, config: Cortexfile, machine: Machine) -> dict[str, Any]:
    row: dict[str, Any] = {"id": model.id, "file": str(path) if path else None}
    if path is None:
        return row | _unknown(f"not on this machine: `cortex pull` fetches {model.source}")
    try:
        plan = plan_slots(model, path, config.engines.llama_cpp, config.server.limits.memory_budget_mb)
        shape = read_shape(path)
    except (ValueError, OSError) as exc:
        return row | _unknown(f"its GGUF header cannot be read: {exc}")
    total = plan.file_bytes + plan.kv_bytes + plan.work_bytes
    room, budget = memory_room(config.server.limits.memory_budget_mb, machine.memory_available)
    fits = total + SERVER_BYTES <= room
    per_token = plan.file_bytes + shape.kv_bytes_per_token * plan.context // 2
    return row | {
        "context": plan.context,
        "slots": plan.parallel,
        "memory": {"weights": plan.file_bytes, "kv_cache": plan.kv_bytes, "buffers": plan.work_bytes, "total": total},
        "fits": fits,
        "reason": None if fits else _too_big(total, room, plan, budget),
        "tokens_per_s": None if model.pooled or not machine.bandwidth else round(machine.bandwidth / per_token, 1),
    }


def _too_big(total: int, room: int, plan: SlotPlan, budget: bool) -> str:
    where = "server.limits.memory_budget_mb" if budget else "available"
    return (f"needs {total / MIB:.0f} MiB ({plan.context} tokens x {plan.parallel} slots) and the server "
            f"{SERVER_BYTES / MIB:.0f} MiB, {room / MIB:.0f} MiB {where}: a smaller context_size, fewer slots or "
            "a smaller quantisation takes less")  # fmt: skip


def _unknown(reason: str) -> dict[str, Any]:
    return {"context": None, "slots": None, "memory": None, "fits": False, "reason": reason, "tokens_per_s": None}


def machine_summary(machine: Machine) -> dict[str, Any]:
    return {
        "cpu_model": machine.cpu_model,
        "cores": machine.cores,
        "cpu_flags": machine.cpu_flags,
        "memory_total": machine.memory_total,
        "memory_available": machine.memory_available,
        "accelerators": machine.accelerators,
        "memory_bandwidth": round(machine.bandwidth) if machine.bandwidth else None,
        "server_memory": SERVER_BYTES,
        "bandwidth_measured_now": machine.bandwidth_measured_now,
    }
