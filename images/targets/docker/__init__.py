"""The docker target: Cortexfile -> plan -> build context -> image, through any Docker-API engine.

A flat list of steps: check the host (preflight), gather files, plan, write the context, build
untagged, then tag and push only what finished.
"""

from __future__ import annotations

import dataclasses
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
from ...artifacts import Files
from ...project_wheel import build_project_wheel, prebuilt_wheels
from ...reproducible import rfc3339, source_epoch
from .. import BuildOptions, Views, baked_models, default_tag, model_store
from ..platform import with_platform
from . import engine, pins
from .build import ContextFolderTaken, build_image, write_context
from .plan import BuildPlan, ImageOptions, make_plan
from .render import HostFiles, render
from .request import DockerRequest, request_from

FORMAT = "docker"


@dataclass(frozen=True)
class Built:
    reference: str | None  # None when only the context was written
    image_id: str | None
    plan: BuildPlan


def make(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> list[str]:
    """`cortex build --format docker`: the lines to print."""
    request = request_from(views, options, environ)
    built = build_docker(views, request, environ)
    lines = [f"build context written to {request.options.context_dir}"] if request.options.context_dir else []
    return lines + ([f"built {built.reference} ({built.image_id})"] if built.reference else [])


def build_docker(views: Views, request: DockerRequest, environ: Mapping[str, str]) -> Built:
    host_view = views.host
    image_view = with_platform(views.of(FORMAT), request.options.platform)
    _check_supported(image_view)
    client = None if request.options.context_only else engine.connect(environ)  # fail fast, before the heavy steps
    try:
        return _make(request, host_view, image_view, client, environ)
    finally:
        if client is not None:
            client.close()


def _make(
    request: DockerRequest,
    host_view: Resolved,
    image_view: Resolved,
    client: docker.DockerClient | None,
    environ: Mapping[str, str],
) -> Built:
    models = baked_models(host_view, request.model_store) if image_view.config.build.bake_models else {}
    if request.lock_file is not None:
        request = _pinned(request, request.lock_file, (host_view, image_view), models)
    cortexfile = host_view.source if request.options.bake_cortexfile else None
    epoch = source_epoch([request.options.file, *(path for _, path in models.values())], environ)
    with tempfile.TemporaryDirectory(prefix="cortex-build-") as scratch:
        wheels = _wheels(request, Path(scratch))
        digests = {model: sha for model, (sha, _) in models.items()}
        plan = make_plan(image_view.config, _options(request, wheels, epoch), digests, host_view.config.build.network)
        files = render(plan, HostFiles(cortexfile, wheels, dict(models.values()), environ))
        if request.options.context_dir is not None:
            _write_context(files, request.options.context_dir)
        if client is None:
            return Built(None, None, plan)
        reference = request.tag or default_tag(image_view)
        image_id = build_image(client, request, reference, files, scratch=Path(scratch), epoch=epoch)
        return Built(reference, image_id, plan)


def _pinned(
    request: DockerRequest, lock_file: Path, views: tuple[Resolved, Resolved], models: dict[str, tuple[str, Path]]
) -> DockerRequest:
    """The request with its bases replaced by the lock's digests, once its models match the lock."""
    host_view, image_view = views
    baked = lock.contents(lock.models(models, lock.model_sources(host_view)), {})
    locked = lock.check(lock_file, baked, lock.declared(host_view))
    found = pins.pinned(
        pins.bases(image_view, request.options.base_image, request.options.builder_image), locked, lock_file
    )
    options = dataclasses.replace(request.options, base_image=found.runtime, builder_image=found.builder)
    return dataclasses.replace(request, options=options)


def check_locked(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> None:
    """ConfigError when the models or the base images differ from what Cortexfile.lock pins."""
    request = request_from(views, options, environ)
    image_view = with_platform(views.of(FORMAT), options.platform)
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


def _wheels(request: DockerRequest, scratch: Path) -> tuple[Path, ...]:
    """This project's wheel first: from --wheels when it holds one (a release), else built here."""
    extra = prebuilt_wheels(request.options.wheels_dir) if request.options.wheels_dir else ()
    own = [w for w in extra if w.name.startswith("menlo_cortex-")]
    project = own[-1] if own else build_project_wheel(scratch / "wheels")
    return (project, *(w for w in extra if not w.name.startswith("menlo_cortex-")))


def _options(request: DockerRequest, wheels: tuple[Path, ...], epoch: int) -> ImageOptions:
    return ImageOptions(
        format=FORMAT,
        tag=request.tag,
        platform=request.options.platform,
        base_image=request.options.base_image,
        builder_image=request.options.builder_image,
        project_wheel=wheels[0].name,
        prebuilt_wheels=tuple(w.name for w in wheels[1:]),
        version=__version__,
        created=rfc3339(epoch),
    )


def _write_context(files: Files, folder: Path) -> None:
    try:
        write_context(files, folder)
    except ContextFolderTaken as exc:
        raise ConfigError([Diagnostic(Origin("flag --context-dir"), "", str(exc))]) from None
