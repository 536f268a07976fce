"""The docker target: Cortexfile -> plan -> build context -> image, through any Docker-API engine.

A flat list of steps: load (host view and image view), check the host, gather files, plan,
write the context, build untagged, then tag and push only what finished.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker

from menlo_cortex import __version__

from ..cortexfile import formats
from ..cortexfile.errors import ConfigError, Diagnostic
from ..cortexfile.loader import Resolved, load, load_from_environment
from ..cortexfile.plan import BuildOptions, BuildPlan, make_plan
from ..cortexfile.preflight import Phase, preflight
from ..cortexfile.store import data_dir
from . import engine
from .context import Entry, HostFiles, entries, write_tar, write_tree
from .docker_matrix import UnsupportedTarget, flavor
from .progress import BuildDisplay
from .wheels import build_project_wheel, prebuilt_wheels

SPACE_MARGIN_BYTES = 512 << 20


@dataclass(frozen=True)
class DockerBuild:
    """What `cortex build --format docker` was asked to do."""

    file: Path
    bake_cortexfile: bool = True
    tag: str | None = None
    platform: str | None = None
    push: bool = False
    context_dir: Path | None = None
    wheels_dir: Path | None = None
    base_image: str | None = None
    builder_image: str | None = None
    network_mode: str | None = None
    context_only: bool = False
    no_cache: bool = False
    verbose: bool = False


@dataclass(frozen=True)
class Built:
    reference: str | None  # None when only the context was written
    image_id: str | None
    plan: BuildPlan


def build_docker(request: DockerBuild, environ: Mapping[str, str]) -> Built:
    host_view = _host_view(request.file, environ)
    image_view = load(request.file, format_defaults=formats.get("docker").loader_argument())
    _check_supported(image_view)
    client = None if request.context_only else engine.connect(environ)  # fail fast, before the heavy steps
    try:
        return _make(request, host_view, image_view, client, environ)
    finally:
        if client is not None:
            client.close()


def _make(
    request: DockerBuild,
    host_view: Resolved,
    image_view: Resolved,
    client: docker.DockerClient | None,
    environ: Mapping[str, str],
) -> Built:
    models = _baked_models(host_view, environ) if image_view.config.build.bake_models else {}
    with tempfile.TemporaryDirectory(prefix="cortex-build-") as scratch:
        wheels = _wheels(request, Path(scratch))
        digests = {model: sha for model, (sha, _) in models.items()}
        plan = make_plan(image_view.config, _options(request, wheels), digests, host_view.config.build.network)
        cortexfile = request.file if request.bake_cortexfile else None
        files = entries(plan, HostFiles(cortexfile, wheels, dict(models.values()), environ))
        if request.context_dir is not None:
            write_tree(files, request.context_dir)
        if client is None:
            return Built(None, None, plan)
        return _build(client, request, plan, files, Path(scratch))


def _check_supported(resolved: Resolved) -> None:
    target = resolved.config.target
    try:
        flavor(target.distro.value, target.accelerator.value)
    except UnsupportedTarget as exc:
        where = resolved.origin(("target", "accelerator"))
        raise ConfigError([Diagnostic(where, "target.accelerator", str(exc))]) from None


def _host_view(file: Path, environ: Mapping[str, str]) -> Resolved:
    """The Cortexfile as this host sees it (its env, its data folder), preflight-checked."""
    resolved = load_from_environment(file)
    problems = preflight(resolved, Phase.build, environ)
    if problems:
        raise ConfigError(resolved.warnings + problems)
    return resolved


def _baked_models(resolved: Resolved, environ: Mapping[str, str]) -> dict[str, tuple[str, Path]]:
    """model id -> (sha256, verified file): located or fetched by the model store on the host,
    so no hub token enters the build."""
    from ..runtime.store import ModelStore, file_sha256

    config = resolved.config
    store = ModelStore(config, data_dir(config, environ))
    found = {}
    for model in config.models:
        path = store.ensure(model)
        found[model.id] = (model.sha256 or file_sha256(path), path)
    return found


def _wheels(request: DockerBuild, scratch: Path) -> tuple[Path, ...]:
    """This project's wheel first: from --wheels when it holds one (a release), else built here."""
    extra = prebuilt_wheels(request.wheels_dir) if request.wheels_dir else ()
    own = [w for w in extra if w.name.startswith("menlo_cortex-")]
    project = own[-1] if own else build_project_wheel(scratch / "wheels")
    return (project, *(w for w in extra if not w.name.startswith("menlo_cortex-")))


def _options(request: DockerBuild, wheels: tuple[Path, ...]) -> BuildOptions:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    return BuildOptions(
        format="docker",
        tag=request.tag,
        platform=request.platform,
        base_image=request.base_image,
        builder_image=request.builder_image,
        project_wheel=wheels[0].name,
        prebuilt_wheels=tuple(w.name for w in wheels[1:]),
        version=__version__,
        created=datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def default_tag(plan: BuildPlan) -> str:
    return f"cortex-appliance:{plan.config_hash[:12]}"


def _build(
    client: docker.DockerClient, request: DockerBuild, plan: BuildPlan, files: Mapping[str, Entry], scratch: Path
) -> Built:
    _check_space(files, scratch)
    display = BuildDisplay(verbose=request.verbose)
    tarball = scratch / "context.tar"
    with tarball.open("w+b") as stream:
        write_tar(files, stream, mtime=int(os.environ.get("SOURCE_DATE_EPOCH") or 0))
        stream.seek(0)
        image_id = engine.build(
            client, engine.BuildRequest(stream, request.platform, request.network_mode, request.no_cache), display
        )
    reference = request.tag or default_tag(plan)
    engine.tag(client, image_id, reference)
    if request.push:
        engine.push(client, reference, display)
    return Built(reference, image_id, plan)


def _check_space(files: Mapping[str, Entry], scratch: Path) -> None:
    needed = sum(len(e) if isinstance(e, bytes) else e.stat().st_size for e in files.values()) + SPACE_MARGIN_BYTES
    free = shutil.disk_usage(scratch).free
    if free < needed:
        raise engine.EngineError(
            f"not enough disk space to stage the build context in {scratch}: {needed >> 20} MiB needed, "
            f"{free >> 20} MiB free (set TMPDIR to a larger disk)"
        )
