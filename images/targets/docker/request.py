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
    """What `cortex build --format docker` was asked to do: the options as given, and what follows from them."""

    options: BuildOptions
    model_store: Path  # the build host's data folder: baked models are found or fetched there
    tag: str | None = None  # --tag, else --push REF's
    lock_file: Path | None = None  # --locked: build FROM the digests this lock pins


def request_from(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> DockerRequest:
    if options.context_only and options.context_dir is None:
        raise ConfigError([Diagnostic(Origin("flag --context-only"), "", "needs --context-dir DIR")])
    return DockerRequest(
        options=options,
        model_store=model_store(views, options, environ),
        tag=options.tag or options.push_to,
        lock_file=lock.lock_path(options.file) if options.locked else None,
    )
