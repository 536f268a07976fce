"""`cortex models fit`: for each model of a Cortexfile, the memory it takes here (weights and the copies the CPU
kernels make of them, KV cache at its context and slots, llama.cpp's buffers: the runtime's own plan), whether that
fits this machine, and the generation speed its memory bandwidth allows.

The estimate of tokens/s is bandwidth over the bytes one token reads: every weight matrix (or the copy the CPU
kernels multiply instead; the token embeddings only where they are the output too, every expert of a mixture),
and the KV cache of a half full context. It ignores compute, so it is an upper bound where the model is small and
its vocabulary large.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from menlo_cortex.cortexfile import catalogue
from menlo_cortex.cortexfile.catalogue import Entry
from menlo_cortex.cortexfile.data_folder import data_dir
from menlo_cortex.cortexfile.schema import Cortexfile, Model
from menlo_cortex.cortexfile.schema.models import LlamaCppEngine, SourceKind, source_kind
from menlo_cortex.cortexfile.secrets import SecretUnavailable
from menlo_cortex.runtime.fetch.netsettings import net_settings
from menlo_cortex.runtime.models.batching.offload import GPU_MARGIN, gpu_room
from menlo_cortex.runtime.models.batching.plan import (
    SERVER_BYTES,
    SlotPlan,
    available_memory,
    memory_room,
    plan_placed,
)
from menlo_cortex.runtime.models.model_store import ModelInvalid, ModelStore, ModelUnavailable
from menlo_cortex.runtime.models.weight_copies import Kernels, bytes_read_per_token

from .bandwidth import cache_file, memory_bandwidth
from .gpus import gpus
from .headers import Header, Unreadable, cache_folder, from_file, from_url
from .host import accelerators, host_facts

MIB = 1024 * 1024


class Board(NamedTuple):
    """A device sized from its hardware recipe rather than read here."""

    memory_mb: int
    name: str
    kernels: Kernels  # what its build's CPU module can use
    integrated: bool = False  # its GPU computes in its memory (Target.integrated_gpu): a Jetson's


class Room(NamedTuple):
    bytes: int  # what the models may take
    named: str  # where that figure comes from


@dataclass(frozen=True)
class Machine:
    cpu_model: str
    cores: int
    cpu_flags: list[str]
    memory_total: int
    memory_available: int  # MemAvailable, or less under a cgroup limit
    accelerators: list[str]
    gpus: list[dict[str, Any]]  # name, memory_total and memory_free in bytes (None: unknown, why_unknown says why)
    bandwidth: float | None  # bytes/s; None: not measured (numpy missing)
    bandwidth_measured_now: bool


def this_machine(
    environ: Mapping[str, str] | None = None, *, bandwidth_needed: bool = True, gpus_needed: bool = True
) -> Machine:
    """`bandwidth_needed` False: sizing for another device (a board), whose speed this machine's does not tell;
    `gpus_needed` False: no GPU memory read (it may spawn nvidia-smi, seconds on a busy driver)."""
    facts = host_facts()
    cpu_model, cores, memory = str(facts["cpu_model"]), int(str(facts["cores"])), int(str(facts["memory_bytes"] or 0))
    bandwidth, now = (
        memory_bandwidth(f"{cpu_model}|{cores}|{memory}", cache_file(dict(environ or os.environ)))
        if bandwidth_needed
        else (None, False)
    )
    flags = facts["cpu_flags"]
    return Machine(cpu_model, cores, list(flags) if isinstance(flags, list) else [], memory, available_memory(),
                   accelerators(), gpus() if gpus_needed else [], bandwidth, now)  # fmt: skip


def fit_models(
    config: Cortexfile,
    machine: Machine,
    kernels: Kernels,
    environ: Mapping[str, str] | None = None,
    cortexfile: Path | None = None,
    *,
    gpu_free: Sequence[int] | None = None,
    integrated: bool = False,
) -> list[dict[str, Any]]:
    """Each of the Cortexfile's models, run by a CPU module that can use `kernels`: those that fit first, faster
    first. `gpu_free`: the free memory of each discrete GPU llama.cpp would use (None: of the machine's GPUs);
    `integrated`: it would use an integrated one (Backends.integrated_gpu)."""
    env = dict(os.environ if environ is None else environ)
    store = ModelStore(config, data_dir(config, env), cortexfile)
    room = _room(config, machine)
    budget_mb = config.server.limits.memory_budget_mb
    engine = Engine(config.engines.llama_cpp, budget_mb, kernels, gpu_room_of(machine, gpu_free), integrated)
    rows = []
    for model in config.models:
        row: dict[str, Any] = {"id": model.id, "source": model.source}
        try:
            header = _header(model, store, config, env)
        except Unreadable as exc:
            rows.append(row | _unknown(str(exc)))
            continue
        rows.append(row | _estimate(model, header, engine, room, machine.bandwidth))
    return sorted(rows, key=lambda row: (not row["fits"], -(row["tokens_per_s"] or 0.0)))


def fit_catalogue(
    config: Cortexfile,
    machine: Machine,
    kernels: Kernels,
    environ: Mapping[str, str] | None = None,
    board: Board | None = None,
    *,
    gpu_free: Sequence[int] | None = None,
    integrated: bool = False,
) -> list[dict[str, Any]]:
    """Each catalogue model at its preset's context and `config`'s engine settings, on this machine (or a board:
    its memory in MiB, its name): those that fit first, the largest first. `config` gives the data folder and
    the hub. A model whose header cannot be read (no network) is sized from the catalogue's file size: its
    weights, plus a quarter for one slot's KV cache and buffers. On a board, tokens/s is not estimated: its
    memory bandwidth is not this machine's."""
    env = dict(os.environ if environ is None else environ)
    store = ModelStore(config, data_dir(config, env))
    room = Room(board.memory_mb * MIB, f"on a {board.name}") if board else _room(config, machine)
    budget_mb = board.memory_mb if board else config.server.limits.memory_budget_mb
    gpu = (None, board.integrated) if board else (gpu_room_of(machine, gpu_free), integrated)
    engine = Engine(config.engines.llama_cpp, budget_mb, kernels, *gpu)
    bandwidth = None if board else machine.bandwidth
    rows = []
    for entry in catalogue.entries():
        row = _catalogue_row(entry)
        try:
            header = _header(entry.model, store, config, env)
        except Unreadable as exc:
            rows.append(row | _from_facts(entry, room, bandwidth, str(exc), engine.integrated))
            continue
        rows.append(row | _estimate(entry.model, header, engine, room, bandwidth))
    return sorted(rows, key=lambda row: (not row["fits"], -row["parameters"], row["size_bytes"]))


def gpu_room_of(machine: Machine, gpu_free: Sequence[int] | None) -> int | None:
    """What `gpu_layers: auto` may fill of the discrete GPUs llama.cpp would use (`gpu_free`), or else of this
    machine's GPUs whose memory is known; None: none."""
    if gpu_free is None:
        gpu_free = [gpu["memory_free"] for gpu in machine.gpus if gpu["memory_free"] is not None]
    return gpu_room(gpu_free)


def _room(config: Cortexfile, machine: Machine) -> Room:
    room, by_budget = memory_room(config.server.limits.memory_budget_mb, machine.memory_available)
    return Room(room, "server.limits.memory_budget_mb" if by_budget else "available")


def _header(model: Model, store: ModelStore, config: Cortexfile, environ: dict[str, str]) -> Header:
    """The model's header: from its file here, else from the first megabytes of its remote file."""
    try:
        return from_file(store.locate(model))
    except (ModelUnavailable, ModelInvalid) as exc:
        if isinstance(exc, ModelInvalid) or source_kind(model.source) is SourceKind.local:
            raise Unreadable(f"not on this machine: {exc}") from None
    try:
        net = net_settings(config.network)
    except (SecretUnavailable, ValueError) as exc:
        raise Unreadable(f"its header cannot be fetched: {exc}") from None
    return from_url(store.source_url(model), net, cache_folder(environ))


class Engine(NamedTuple):
    settings: LlamaCppEngine
    budget_mb: int | None  # what `parallel: auto` plans within (None: the memory available)
    kernels: Kernels  # what its CPU module can use (the weight copies it makes)
    gpu_room: int | None = None  # what `gpu_layers: auto` may fill; None: no discrete GPU
    integrated: bool = False  # llama.cpp would compute on an integrated GPU, in the host's memory


def _estimate(model: Model, header: Header, engine: Engine, room: Room, bandwidth: float | None) -> dict[str, Any]:
    plan = plan_placed(model, header.sizes, engine.settings, engine.budget_mb, kernels=engine.kernels,
                       gpu_room=engine.gpu_room, integrated=engine.integrated)  # fmt: skip
    total, on_gpu = plan.host_bytes, plan.gpu.device
    reason = _too_big(total, room, plan) if total + SERVER_BYTES > room.bytes else None
    if engine.gpu_room is not None and on_gpu > engine.gpu_room:
        reason = (f"{plan.gpu_layers} layers need {on_gpu / MIB:.0f} MiB of GPU memory, {engine.gpu_room / MIB:.0f} "
                  "MiB free (less llama.cpp's margin): gpu_layers: auto takes as many as fit")  # fmt: skip
    speed = None if plan.gpu_layers else _tokens_per_s(model, bandwidth, _read(header, plan, engine.kernels))
    memory = {"weights": plan.file_bytes, "weight_copies": plan.copied.bytes, "reclaimable": plan.copied.reclaimable,
              "kv_cache": plan.host_kv_bytes, "buffers": plan.work_bytes, "total": total, "gpu": on_gpu,
              "integrated_gpu": plan.gpu.in_host}  # fmt: skip
    return {
        "header": header.read_from,
        "context": plan.context,
        "slots": plan.parallel,
        "gpu_layers": plan.gpu_layers,
        "memory": memory,
        "fits": reason is None,
        "reason": reason,
        "tokens_per_s": speed,
    }


def _read(header: Header, plan: SlotPlan, kernels: Kernels) -> int:
    """The bytes a token reads: its weights (or the CPU kernels' copies) and the KV cache of half the context."""
    sizes = header.sizes
    weights = bytes_read_per_token(sizes.matrices, kernels) if sizes.matrices else plan.file_bytes
    return weights + sizes.shape.kv_bytes_per_token * plan.context // 2


def _from_facts(entry: Entry, room: Room, bandwidth: float | None, why: str, integrated: bool) -> dict[str, Any]:
    weights = entry.facts.size_bytes
    total = weights * 5 // 4 + (GPU_MARGIN if integrated else 0)  # an integrated GPU's runtime, as plans count it
    unknown = dict.fromkeys(("weight_copies", "reclaimable", "kv_cache", "buffers", "integrated_gpu"))
    fits = total + SERVER_BYTES <= room.bytes
    return {
        "header": f"sized from the catalogue: its header was not read ({why})",
        "context": entry.model.context_size,
        "slots": 1,
        "gpu_layers": None,
        "memory": {"weights": weights, **unknown, "total": total, "gpu": None},
        "fits": fits,
        "reason": None if fits else f"needs about {total / MIB:.0f} MiB, {room.bytes / MIB:.0f} MiB {room.named}",
        "tokens_per_s": _tokens_per_s(entry.model, bandwidth, weights),
    }


def _tokens_per_s(model: Model, bandwidth: float | None, bytes_per_token: int) -> float | None:
    """Bandwidth over the bytes a token reads; None for a model that generates nothing or where unknown."""
    if model.pooled or not bandwidth or bytes_per_token <= 0:
        return None
    return round(bandwidth / bytes_per_token, 1)


def _catalogue_row(entry: Entry) -> dict[str, Any]:
    facts = entry.facts
    return {"id": entry.name, "source": entry.model.source, **facts.model_dump(mode="json")}


def _too_big(total: int, room: Room, plan: SlotPlan) -> str:
    return (f"needs {total / MIB:.0f} MiB ({plan.context} tokens x {plan.parallel} slots) and the server "
            f"{SERVER_BYTES / MIB:.0f} MiB, {room.bytes / MIB:.0f} MiB {room.named}: a smaller context_size, fewer "
            "slots or a smaller quantisation takes less")  # fmt: skip


def _unknown(reason: str) -> dict[str, Any]:
    unknown = dict.fromkeys(("context", "slots", "gpu_layers", "memory", "tokens_per_s"))
    return unknown | {"fits": False, "reason": reason}


def machine_summary(machine: Machine) -> dict[str, Any]:
    return {
        "cpu_model": machine.cpu_model,
        "cores": machine.cores,
        "cpu_flags": machine.cpu_flags,
        "memory_total": machine.memory_total,
        "memory_available": machine.memory_available,
        "accelerators": machine.accelerators,
        "gpus": machine.gpus,
        "memory_bandwidth": round(machine.bandwidth) if machine.bandwidth else None,
        "server_memory": SERVER_BYTES,
        "bandwidth_measured_now": machine.bandwidth_measured_now,
    }
