"""The disk target's request: what `cortex build --format disk` was asked to do, typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from menlo_cortex.cortexfile.loader import Resolved

from .. import BuildOptions, Views, model_store
from .plan import FORMAT


@dataclass(frozen=True)
class DiskRequest:
    resolved: Resolved  # loaded with the disk format's defaults layer
    output: Path
    model_store: Path
    wheels_dir: Path | None = None
    platform: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)


def request_from(views: Views, options: BuildOptions, environ: Mapping[str, str], name: str = FORMAT) -> DiskRequest:
    """`name`: the format whose view of the Cortexfile the root is built from (`update` builds the same root)."""
    return DiskRequest(
        resolved=views.of(name),
        output=options.output,
        model_store=model_store(views, options, environ),
        wheels_dir=options.wheels_dir,
        platform=options.platform,
        environ=environ,
    )
