"""`cortex build --format systemd`: assemble the bundle folder, then its tarball and sha256.

Steps, each a function: gather wheels -> plan -> render -> copy the Cortexfile byte for byte ->
place models in the store layout -> rename the finished folder into place -> tar it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from menlo_cortex.cortexfile.hashing import config_hash
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.runtime.models.model_store import ModelStore, file_sha256

from menlo_cortex import __version__

from ... import runtime_wheels
from ...files import link_or_copy
from ...project_wheel import build_project_wheel, runtime_constraints
from ...reproducible import source_epoch
from .archive import write_tarball
from .plan import FORMAT, ServicePlan, make_plan
from .render import EXECUTABLE, render_files


@dataclass(frozen=True)
class BuildRequest:
    resolved: Resolved  # loaded with plan.DEFAULTS as the format layer
    output: Path
    model_store: Path  # the build host's data folder, where baked models are found or fetched into
    wheels_dir: Path | None = None  # a prebuilt llama-cpp-python wheel for the target (else the cache)
    platform: str | None = None  # linux/amd64 | linux/arm64, overrides target.architecture
    image: str | None = None  # the quadlet's image: what `cortex build --format docker` tags
    environ: Mapping[str, str] = field(default_factory=dict)  # SOURCE_DATE_EPOCH, if set
    defaults: str = FORMAT  # the format layer `resolved` was loaded with: systemd, or disk for a device image


@dataclass(frozen=True)
class Bundle:
    folder: Path
    tarball: Path
    sha256: str
    plan: ServicePlan


def build(request: BuildRequest) -> Bundle:
    resolved = with_platform(request.resolved, request.platform)
    config = resolved.config
    make_plan(resolved, "check", "", defaults=request.defaults)  # bad settings fail here, before any slow step
    llama = runtime_wheels.llama_wheel(config.target.architecture.value, request.wheels_dir)
    staging = request.output / ".cortex-bundle.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        return _assemble(request, resolved, llama, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _assemble(request: BuildRequest, resolved: Resolved, llama: Path, staging: Path) -> Bundle:
    config = resolved.config
    (staging / "wheels").mkdir(parents=True)
    project_wheel = _gather_wheels(staging / "wheels", config.target.architecture.value, llama)
    digest = config_hash(config)
    plan = make_plan(resolved, _version(digest, staging / "wheels"), digest, request.image, request.defaults)
    _write_rendered(staging, plan, project_wheel.name)
    (staging / "Cortexfile.yaml").write_bytes(resolved.source)  # the bytes validated, not the file read again
    sources = _place_models(staging / "models", config, request.model_store, plan)
    folder = request.output / f"cortex-{plan.version}-{plan.architecture}"
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    epoch = source_epoch([request.resolved.path, *sources], request.environ)
    tarball, sha = write_tarball(folder, epoch)
    return Bundle(folder, tarball, sha, plan)


def with_platform(resolved: Resolved, platform: str | None) -> Resolved:
    """`resolved` built for `platform` (`--platform`) instead of its target.architecture."""
    if platform is None:
        return resolved
    target = resolved.config.target
    # The schema's own validator reads `linux/arm64`, `aarch64`, `x86_64`...
    target = target.model_validate({**target.model_dump(), "architecture": platform})
    return dataclasses.replace(resolved, config=resolved.config.model_copy(update={"target": target}))


def _gather_wheels(into: Path, architecture: str, llama: Path) -> Path:
    project = build_project_wheel(into)
    for wheel in runtime_wheels.dependency_wheels(project, llama, architecture, runtime_constraints()):
        link_or_copy(wheel, into / wheel.name)
    return project


def _version(digest: str, wheel_folder: Path) -> str:
    """The project version plus a short hash of the config and every wheel: new content, new prefix."""
    total = hashlib.sha256(digest.encode())
    for wheel in sorted(wheel_folder.glob("*.whl")):
        total.update(wheel.name.encode() + file_sha256(wheel).encode())
    return f"{__version__}-{total.hexdigest()[:12]}"


def _write_rendered(into: Path, plan: ServicePlan, project_wheel: str) -> None:
    for relative, text in render_files(plan, project_wheel).items():
        path = into / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755 if relative in EXECUTABLE else 0o644)


def _place_models(into: Path, config: Cortexfile, store_dir: Path, plan: ServicePlan) -> list[Path]:
    """Each baked model in the store layout; the store files they came from."""
    into.mkdir()
    store = ModelStore(config, store_dir)
    by_id = {model.id: model for model in config.models}
    found = []
    for baked in plan.models:
        found.append(store.ensure(by_id[baked.id]))
        link_or_copy(found[-1], into / f"{baked.sha256}.gguf")
    return found
