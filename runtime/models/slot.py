"""What the server knows about one model of the Cortexfile, and how it tells it: the loaded line's placement,
a failure's message, the console's overview."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from menlo_cortex.cortexfile.schema import Model

from .batching.plan import MIB, SlotPlan
from .engine import Engine


@dataclass(eq=False)
class Slot:
    """One model of the Cortexfile and what the server currently knows about it."""

    model: Model
    state: str = "unloaded"  # loading | ready | unloaded | sleeping | failed
    error: str | None = None
    engine: Engine | None = None
    size_mb: float = 0.0  # host memory (model file, KV cache, buffers), once planned
    parallel: int | None = None  # its engine's slots, once planned
    gpu_layers: int | None = None  # layers on the GPUs (n_gpu_layers; with auto, as planned), once planned
    gpu_bytes: int = 0  # the GPU memory they take, as planned
    pending: int = 0  # requests admitted: waiting or running
    last_used: float = 0.0
    loaded_once: bool = False
    loading: asyncio.Task[Engine] | None = None


def describe(model: Model, exc: Exception) -> str:
    message = str(exc) or type(exc).__name__
    return message if model.id in message else f"model `{model.id}`: {message}"


def retried(model: Model, exc: Exception, plan: SlotPlan, gpu_cap: int) -> str:
    """The warning of a load tried again with at most `gpu_cap` bytes on the GPU, after llama.cpp refused `plan`."""
    planned = f"{plan.gpu.device / MIB:.0f} MiB" if plan.gpu.device else "an integrated one"
    less = f"at most {gpu_cap / MIB:.0f} MiB there" if gpu_cap else "none there"
    layers = f"with {plan.gpu_layers} layers planned on the GPU ({planned})"
    return f"{describe(model, exc)}; {layers}: loading it again with {less}"


def placement(plan: SlotPlan) -> str:
    """The loaded line's account of where the weights went: the GPUs', or the CPU kernels' copies."""
    if plan.gpu.shared:
        shared = plan.gpu.total / MIB
        return f", {shared:.0f} MiB of it on the integrated GPU ({plan.gpu_layers} layers and its runtime)"
    if plan.gpu.total:
        return f", and {plan.gpu.total / MIB:.0f} MiB of GPU memory ({plan.gpu_layers} layers offloaded)"
    if plan.gpu_layers:
        return f"; gpu_layers {plan.gpu_layers} goes to llama.cpp, counted in host memory (no discrete GPU here)"
    copied = f" ({plan.copied.bytes / MIB:.0f} MiB of weights copied for the CPU kernels)" if plan.copied.bytes else ""
    return copied if plan.gpu.batches else f"{copied}; none on the GPU, which had no room for a layer"


def overview_of(slot: Slot) -> dict[str, object]:
    busy = slot.pending if slot.parallel is None else min(slot.pending, slot.parallel)
    return {
        "id": slot.model.id,
        "state": slot.state,
        "error": slot.error,
        "memory_mb": round(slot.size_mb) if slot.size_mb else None,
        "slots": slot.parallel,
        "gpu_layers": slot.gpu_layers,
        "busy": busy,
        "queued": slot.pending - busy,
    }
