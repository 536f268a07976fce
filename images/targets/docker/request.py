"""The docker target's request: what `cortex build --format docker` was asked to do, typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin

from ... import lock
from .. import BuildOptions, Views, model_store


@dataclass(frozen=True)
class DockerRequest:
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


def request_from(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> DockerRequest:
    if options.context_only and options.context_dir is None:
        raise ConfigError([Diagnostic(Origin("flag --context-only"), "", "needs --context-dir DIR")])
    return DockerRequest(
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
