"""`cortex build --format kube`: a Kustomize base in `-o DIR` for the image `--format docker`/`oci` makes of the
same Cortexfile (`--tag`, by digest when it holds one; else the docker target's default tag).

The build host's one step: the size of each model (and of its KV cache, from the GGUF header) from the local
model store, for the pod's memory and the startup probe's patience. Nothing is downloaded."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from menlo_cortex.cortexfile.data_folder import find_local
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic
from menlo_cortex.cortexfile.loader import Resolved

from .. import BuildOptions, Views
from .build import build
from .plan import FORMAT, ModelFacts, make_plan
from .render import render
from .request import KubeRequest, request_from

__all__ = ["FORMAT", "KubeRequest", "make", "request_from"]

UNBOUNDED_MB = 1 << 30  # a budget no model reaches: the slot count is the runtime's own cap, not memory


def make(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> list[str]:
    request = request_from(views, options, environ)
    facts = model_facts(request.resolved, request.model_store)
    plan = make_plan(request.resolved, request.image, facts, request.cortexfile)
    folder = build(render(plan), request.output)
    return [f"{folder} (kubectl apply -k {folder}; image {request.image})"]


def model_facts(resolved: Resolved, store: Path) -> dict[str, ModelFacts]:
    """The runtime's own slot plan for each model found in the store (or at its local source), with room for
    every slot `parallel: auto` may take: the pod gets the memory they need, not what this build host has
    free. Absent models are left out. Read from the GGUF header in plain Python: no llama.cpp needed here."""
    from menlo_cortex.runtime.models.batching.plan import plan_slots
    from menlo_cortex.runtime.models.weight_copies import kernels_for_build

    config = resolved.config
    kernels = kernels_for_build(config.target.architecture, config.target.llama_cmake_args)
    found = {}
    for index, model in enumerate(config.models):
        path = find_local(model, store)
        if path is not None:
            try:
                slots = plan_slots(model, path, config.engines.llama_cpp, UNBOUNDED_MB, kernels,
                                   integrated=config.target.integrated_gpu)  # fmt: skip
            except ValueError as exc:
                message = f"--format kube: {path} cannot be sized: {exc}"
                raise ConfigError(
                    [Diagnostic(resolved.origin(("models", index)), f"models[{index}]", message)]
                ) from None
            found[model.id] = ModelFacts(
                slots.file_bytes, slots.kv_bytes, slots.work_bytes, slots.weights_bytes - slots.file_bytes
            )
    return found
