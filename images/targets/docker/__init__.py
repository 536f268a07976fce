"""The docker target: Cortexfile -> plan -> build context -> image, through any Docker-API engine.

A flat list of steps: check the host (preflight), gather files, plan, write the context, build
untagged, then tag and push only what finished.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from menlo_cortex.cortexfile import format_rules
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin
from menlo_cortex.cortexfile.loader import Resolved

from menlo_cortex import __version__

from ... import lock
from ...project_wheel import build_project_wheel, prebuilt_wheels
from ...reproducible import rfc3339, source_epoch
from .. import BuildOptions, Views, baked_models, default_tag, model_store
from . import engine, pins
from .context import Entry, HostFiles, entries, write_tar, write_tree
from .plan import BuildPlan, ImageOptions, make_plan
from .progress import BuildDisplay

FORMAT = "docker"
SPACE_MARGIN_BYTES = 512 << 20


@dataclass(frozen=True)
class DockerBuild:
    """What `cortex build --format docker` was asked to do."""

    file: Path
    model_store: Path  # the build host's data folder: baked models are found or fetched there
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
    lock_file: Path | None = None  # --locked: build FROM the digests this lock pins


@dataclass(frozen=True)
class Built:
    reference: str | None  # None when only the context was written
    image_id: str | None
    plan: BuildPlan


def request_from(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> DockerBuild:
    if options.context_only and options.context_dir is None:
        raise ConfigError([Diagnostic(Origin("flag --context-only"), "", "needs --context-dir DIR")])
    return DockerBuild(
        file=options.file,
        model_store=model_store(views, options, environ),
        bake_cortexfile=options.bake_cortexfile,
        tag=options.tag or options.push_to,
        platform=options.platform,
        push=options.push,
        context_dir=options.context_dir,
        wheels_dir=options.wheels_dir,
        base_image=options.base_image,
        builder_image=options.builder_image,
        network_mode=options.network_mode,
        context_only=options.context_only,
        no_cache=options.no_cache,
        verbose=options.verbose,
        lock_file=lock.lock_path(options.file) if options.locked else None,
    )


def make(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> list[str]:
    """`cortex build --format docker`: the lines to print."""
    request = request_from(views, options, environ)
    built = build_docker(views, request, environ)
    lines = [f"build context written to {request.context_dir}"] if request.context_dir else []
    return lines + ([f"built {built.reference} ({built.image_id})"] if built.reference else [])


def build_docker(views: Views, request: DockerBuild, environ: Mapping[str, str]) -> Built:
    host_view = views.host
    image_view = views.of(FORMAT)
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
    models = baked_models(host_view, request.model_store) if image_view.config.build.bake_models else {}
    if request.lock_file is not None:
        request = _pinned(request, request.lock_file, (host_view, image_view), models)
    cortexfile = host_view.source if request.bake_cortexfile else None
    epoch = source_epoch([request.file, *(path for _, path in models.values())], environ)
    with tempfile.TemporaryDirectory(prefix="cortex-build-") as scratch:
        wheels = _wheels(request, Path(scratch))
        digests = {model: sha for model, (sha, _) in models.items()}
        plan = make_plan(image_view.config, _options(request, wheels, epoch), digests, host_view.config.build.network)
        files = entries(plan, HostFiles(cortexfile, wheels, dict(models.values()), environ))
        if request.context_dir is not None:
            write_tree(files, request.context_dir)
        if client is None:
            return Built(None, None, plan)
        reference = request.tag or default_tag(image_view)
        image_id = _build(client, request, reference, files, scratch=Path(scratch), epoch=epoch)
        return Built(reference, image_id, plan)


def _pinned(
    request: DockerBuild, lock_file: Path, views: tuple[Resolved, Resolved], models: dict[str, tuple[str, Path]]
) -> DockerBuild:
    """The request with its bases replaced by the lock's digests, once its models match the lock."""
    host_view, image_view = views
    locked = lock.check(lock_file, lock.contents(lock.models(models, lock.model_sources(host_view)), {}))
    found = pins.pinned(pins.bases(image_view, request.base_image, request.builder_image), locked, lock_file)
    return dataclasses.replace(request, base_image=found.runtime, builder_image=found.builder)


def check_locked(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> None:
    """ConfigError when the models or the base images differ from what Cortexfile.lock pins."""
    request = request_from(views, options, environ)
    image_view = views.of(FORMAT)
    models = baked_models(views.host, request.model_store) if image_view.config.build.bake_models else {}
    _pinned(request, lock.lock_path(options.file), (views.host, image_view), models)


def lock_sections(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> dict[str, Any]:
    """What `cortex lock` records for this format: the models, and each base image by digest."""
    image_view = views.of(FORMAT)
    _check_supported(image_view)
    store = model_store(views, options, environ)
    models = baked_models(views.host, store) if image_view.config.build.bake_models else {}
    client = engine.connect(environ)
    try:
        images = pins.digests(client, pins.bases(image_view, options.base_image, options.builder_image))
    finally:
        client.close()
    return lock.contents(lock.models(models, lock.model_sources(views.host)), {"docker": {"images": images}})


def _check_supported(resolved: Resolved) -> None:
    """What this format refuses from the file alone (cortexfile/format_rules.py, which validate reports too)."""
    problems = format_rules.problems(resolved, FORMAT)
    if problems:
        raise ConfigError(problems)


def _wheels(request: DockerBuild, scratch: Path) -> tuple[Path, ...]:
    """This project's wheel first: from --wheels when it holds one (a release), else built here."""
    extra = prebuilt_wheels(request.wheels_dir) if request.wheels_dir else ()
    own = [w for w in extra if w.name.startswith("menlo_cortex-")]
    project = own[-1] if own else build_project_wheel(scratch / "wheels")
    return (project, *(w for w in extra if not w.name.startswith("menlo_cortex-")))


def _options(request: DockerBuild, wheels: tuple[Path, ...], epoch: int) -> ImageOptions:
    return ImageOptions(
        format=FORMAT,
        tag=request.tag,
        platform=request.platform,
        base_image=request.base_image,
        builder_image=request.builder_image,
        project_wheel=wheels[0].name,
        prebuilt_wheels=tuple(w.name for w in wheels[1:]),
        version=__version__,
        created=rfc3339(epoch),
    )


def _build(
    client: docker.DockerClient,
    request: DockerBuild,
    reference: str,
    files: Mapping[str, Entry],
    *,
    scratch: Path,
    epoch: int,
) -> str:
    """Build untagged, then tag (and push) only what finished; the image id."""
    _check_space(files, scratch)
    display = BuildDisplay(verbose=request.verbose)
    tarball = scratch / "context.tar"
    with tarball.open("w+b") as stream:
        write_tar(files, stream, epoch)
        stream.seek(0)
        image_id = engine.build(
            client, engine.BuildRequest(stream, request.platform, request.network_mode, request.no_cache), display
        )
    engine.tag(client, image_id, reference)
    if request.push:
        engine.push(client, reference, display)
    return image_id


def _check_space(files: Mapping[str, Entry], scratch: Path) -> None:
    needed = sum(len(e) if isinstance(e, bytes) else e.stat().st_size for e in files.values()) + SPACE_MARGIN_BYTES
    free = shutil.disk_usage(scratch).free
    if free < needed:
        raise engine.EngineError(
            f"not enough disk space to stage the build context in {scratch}: {needed >> 20} MiB needed, "
            f"{free >> 20} MiB free (set TMPDIR to a larger disk)"
        )
