"""The systemd target's request: what `cortex build --format systemd` (or a device image's bundle) was asked
to do, typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from menlo_cortex.cortexfile.loader import Resolved

from .. import BuildOptions, Views, default_tag, model_store
from .plan import FORMAT


@dataclass(frozen=True)
class SystemdRequest:
    resolved: Resolved  # loaded with plan.DEFAULTS as the format layer
    output: Path
    model_store: Path  # the build host's data folder, where baked models are found or fetched into
    wheels_dir: Path | None = None  # a prebuilt llama-cpp-python wheel for the target (else the cache)
    platform: str | None = None  # linux/amd64 | linux/arm64, overrides target.architecture
    image: str | None = None  # the quadlet's image: what `cortex build --format docker` tags
    environ: Mapping[str, str] = field(default_factory=dict)  # SOURCE_DATE_EPOCH, if set
    defaults: str = FORMAT  # the format layer `resolved` was loaded with: systemd, or disk for a device image


def request_from(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> SystemdRequest:
    return SystemdRequest(
        resolved=views.of(FORMAT),
        output=options.output,
        model_store=model_store(views, options, environ),
        wheels_dir=options.wheels_dir,
        platform=options.platform,
        image=f"localhost/{default_tag(views.of('docker'))}",
        environ=environ,
    )
