"""`cortex build --format systemd`: assemble the bundle folder, then its tarball and sha256.

Steps, each a function: gather wheels -> plan -> render, with the Cortexfile's validated bytes and the
models in the store layout -> write it all in a private folder -> publish it by one rename -> tar it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile.hashing import config_hash
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.runtime.models.model_store import ModelStore, file_sha256

from menlo_cortex import __version__

from ... import runtime_wheels
from ...architectures import BUNDLE_PYTHONS
from ...artifacts import Artifact, link_or_copy, publish, staging, write_tree
from ...project_wheel import build_project_wheel, runtime_constraints
from ...reproducible import source_epoch
from ..platform import with_platform
from .archive import write_tarball
from .plan import ServicePlan, make_plan
from .render import render
from .request import SystemdRequest


@dataclass(frozen=True)
class Bundle:
    folder: Path
    tarball: Path
    sha256: str
    plan: ServicePlan


def build(request: SystemdRequest) -> Bundle:
    resolved = with_platform(request.resolved, request.platform)
    config = resolved.config
    make_plan(resolved, "check", "", defaults=request.defaults)  # bad settings fail here, before any slow step
    llama = runtime_wheels.llama_wheel(config.target.architecture.value, request.wheels_dir)
    with staging(request.output, "cortex-bundle") as work:
        return _assemble(request, resolved, llama, work)


def _assemble(request: SystemdRequest, resolved: Resolved, llama: Path, work: Path) -> Bundle:
    config = resolved.config
    for name in ("wheels", "models"):  # models/ even when none is baked: install.sh and the device look there
        (work / name).mkdir()
    project_wheel = _gather_wheels(work / "wheels", config.target.architecture.value, llama)
    digest = config_hash(config)
    plan = make_plan(resolved, _version(digest, work / "wheels"), digest, request.image, request.defaults)
    models = _models(config, request.model_store, plan)
    files = {**render(plan, project_wheel.name), "Cortexfile.yaml": Artifact(resolved.source), **models}
    write_tree(files, work)
    os.chmod(work, 0o755)
    folder = publish(work, request.output / f"cortex-{plan.version}-{plan.architecture}")
    sources = [artifact.content for artifact in models.values() if isinstance(artifact.content, Path)]
    epoch = source_epoch([request.resolved.path, *sources], request.environ)
    tarball, sha = write_tarball(folder, epoch)
    return Bundle(folder, tarball, sha, plan)


def _gather_wheels(into: Path, architecture: str, llama: Path) -> Path:
    project = build_project_wheel(into)
    wheels = runtime_wheels.dependency_wheels(project, llama, architecture, runtime_constraints(), BUNDLE_PYTHONS)
    for wheel in wheels:
        link_or_copy(wheel, into / wheel.name)
    return project


def _version(digest: str, wheel_folder: Path) -> str:
    """The project version plus a short hash of the config and every wheel: new content, new prefix."""
    total = hashlib.sha256(digest.encode())
    for wheel in sorted(wheel_folder.glob("*.whl")):
        total.update(wheel.name.encode() + file_sha256(wheel).encode())
    return f"{__version__}-{total.hexdigest()[:12]}"


def _models(config: Cortexfile, store_dir: Path, plan: ServicePlan) -> dict[str, Artifact]:
    """Each baked model in the store layout, from the build host's store (found or fetched there)."""
    store = ModelStore(config, store_dir)
    by_id = {model.id: model for model in config.models}
    return {f"models/{baked.sha256}.gguf": Artifact(store.ensure(by_id[baked.id])) for baked in plan.models}
