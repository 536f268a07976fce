"""Warnings of models that will not fit: the runtime's own memory plan of each model whose file is here, against
a room (the memory available here or the budget, for `validate --preflight start`; the device's, for a build).

Warnings, not errors: memory is taken and freed while a server runs, and a model loaded on demand may never be.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from menlo_cortex.cortexfile.errors import Diagnostic, Severity
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.cortexfile.schema import Model

from ..fetch.errors import ModelUnavailable
from .batching.plan import MIB, SERVER_BYTES, plan_slots
from .model_store import ModelStore
from .weight_copies import Kernels

HINT = "a smaller context_size, parallel or batch_size, or a smaller quantisation: see cortex models fit"
GPU_HINT = "gpu_layers: auto offloads as many layers as fit"


def found_in(store: ModelStore) -> Callable[[Model], Path | None]:
    """The model's file in the store (or at its source path), None when it is not here or not valid."""

    def locate(model: Model) -> Path | None:
        try:
            return store.locate(model)
        except ModelUnavailable:  # ModelInvalid too: the load's error to report
            return None

    return locate


def memory_warnings(
    resolved: Resolved,
    room: tuple[int, str],
    budget_mb: int | None,
    locate: Callable[[Model], Path | None],
    kernels: Kernels,
    *,
    gpu_room: int | None = None,
    integrated: bool = False,
) -> list[Diagnostic]:
    """`room`: the bytes the server may take and what that figure is; `budget_mb`: what `parallel: auto` plans
    within (None: the memory available here); `locate`: the model's file, None when it is not here; `kernels`:
    what the CPU module that runs the models can use (the weight copies it makes); `gpu_room`: the GPU memory
    free here less llama.cpp's margin (None: no discrete GPU, or a build's device); `integrated`: an integrated
    GPU here (Backends.integrated_gpu)."""
    config = resolved.config
    found = []
    for index, model in enumerate(config.models):
        path = locate(model)
        if path is None or not room[0]:
            continue
        try:
            settings = config.engines.llama_cpp
            plan = plan_slots(model, path, settings, budget_mb, kernels, gpu_room=gpu_room, integrated=integrated)
        except ValueError:
            continue  # its header is the start's error to report, with the model's load
        origin = resolved.origin(("models", index))
        if plan.total_mb * MIB + SERVER_BYTES > room[0]:
            message = (f"needs about {plan.total_mb:.0f} MiB (weights, KV cache of {plan.parallel} x {plan.context} "
                       f"tokens, buffers) and the server {SERVER_BYTES // MIB} MiB; {room[0] / MIB:.0f} MiB "
                       f"{room[1]}")  # fmt: skip
            found.append(Diagnostic(origin, f"models[{index}]", message, HINT, Severity.warning))
        if gpu_room is not None and plan.gpu.device > gpu_room:
            message = (f"its {plan.gpu_layers} layers on the GPU need about {plan.gpu.device / MIB:.0f} MiB of GPU "
                       f"memory; {gpu_room / MIB:.0f} MiB is free here (less llama.cpp's margin)")  # fmt: skip
            found.append(Diagnostic(origin, f"models[{index}].gpu_layers", message, GPU_HINT, Severity.warning))
    return found
