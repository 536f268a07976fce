"""The manifests' plan: what the Kustomize base says, from the resolved Cortexfile, the image reference and the
sizes of the models (the build host's one fact). Pure.

Settings Kubernetes cannot honour (a port below 1024 for a user without capabilities, a literal secret that
would land in the ConfigMap, a model on this machine's disk) are located ConfigErrors from
cortexfile/format_rules.py, the same `cortex validate` reports."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import PurePosixPath

from menlo_cortex.cortexfile import format_rules
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.cortexfile.references import runtime_references

FORMAT = "kube"
MIB, GIB = 1 << 20, 1 << 30
RUNTIME_OVERHEAD = 512 * MIB  # Python, uvicorn, and room for what the plan's resident buffers leave out
LOAD_BYTES_PER_S = 50_000_000  # a slow disk or network volume: the startup probe waits this long per byte
STARTUP_BASE_S = 60
PROBE_PERIOD_S = 5


@dataclass(frozen=True)
class ModelFacts:
    """What the build host knows of one model: its file's size, its KV cache at the planned slots,
    llama.cpp's working buffers and the weights its CPU kernels copy (less the originals they free)."""

    file_bytes: int
    kv_bytes: int
    work_bytes: int = 0
    copy_bytes: int = 0


@dataclass(frozen=True)
class SecretFile:
    folder: str
    name: str


@dataclass(frozen=True)
class KubePlan:
    image: str
    port: int
    tls: bool
    replicas: int
    cpu: int
    memory_mib: int
    startup_failures: int
    accelerator: str
    bake_models: bool
    model_volume_gib: int
    storage_class: str | None
    env_secrets: tuple[str, ...]
    pull_env_secrets: tuple[str, ...]  # what `cortex pull` needs: the network's tokens and proxy password
    secret_files: tuple[SecretFile, ...]
    metrics_public: bool
    cortexfile: str  # the file's text, for the ConfigMap

    @property
    def secret_folders(self) -> tuple[str, ...]:
        return tuple(sorted({item.folder for item in self.secret_files}))


def make_plan(resolved: Resolved, image: str, models: dict[str, ModelFacts], cortexfile: str) -> KubePlan:
    problems = format_rules.problems(resolved, FORMAT)
    if problems:
        raise ConfigError(problems)
    config = resolved.config
    kube, auth = config.build.kube, config.server.auth
    references = list(runtime_references(config))
    model_bytes = sum(facts.file_bytes for facts in models.values())
    return KubePlan(
        image=image,
        port=config.server.port,
        tls=config.server.tls.cert is not None,
        replicas=kube.replicas,
        cpu=max((model.threads or 1) for model in config.models) if config.models else 1,
        memory_mib=_memory_mib(resolved, models),
        startup_failures=math.ceil((STARTUP_BASE_S + model_bytes / LOAD_BYTES_PER_S) / PROBE_PERIOD_S),
        accelerator=config.target.accelerator.value,
        bake_models=config.build.bake_models,
        model_volume_gib=kube.model_volume_gb or max(1, math.ceil(model_bytes * 1.25 / GIB)),
        storage_class=kube.storage_class,
        env_secrets=tuple(sorted({ref.target for ref in references if ref.kind == "env"})),
        pull_env_secrets=tuple(sorted({r.target for r in references if r.kind == "env" and r.path[0] == "network"})),
        secret_files=tuple(
            sorted(
                {_secret_file(ref.target) for ref in references if ref.kind == "file"},
                key=lambda item: (item.folder, item.name),
            )
        ),
        metrics_public=auth.public_metrics or not (auth.api_keys or auth.api_key_file),
        cortexfile=cortexfile,
    )


def _memory_mib(resolved: Resolved, models: dict[str, ModelFacts]) -> int:
    """The memory the pod requests (and is limited to): the budget the Cortexfile sets, else every model's
    file, KV cache and working buffers, plus the runtime."""
    budget = resolved.config.server.limits.memory_budget_mb
    if budget is not None:
        return budget + RUNTIME_OVERHEAD // MIB
    missing = [model.id for model in resolved.config.models if model.id not in models]
    if missing:
        hint = "set server.limits.memory_budget_mb, or `cortex pull` the model so its size is known"
        message = f"--format kube: no size known for {', '.join(missing)}"
        raise ConfigError([Diagnostic(resolved.origin(("models",)), "models", message, hint)])
    total = sum(facts.file_bytes + facts.kv_bytes + facts.work_bytes + facts.copy_bytes for facts in models.values())
    total += RUNTIME_OVERHEAD
    return math.ceil(total / MIB)


def _secret_file(path: str) -> SecretFile:
    pure = PurePosixPath(path)
    return SecretFile(str(pure.parent), pure.name)
