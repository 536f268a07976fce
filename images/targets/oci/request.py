"""The OCI target's request: what `cortex build --format oci` (or `cortex lock`) was asked to do, typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from menlo_cortex.cortexfile.loader import Resolved

from .. import BuildOptions, Views, model_store
from .plan import FORMAT, architectures, check_reference


@dataclass(frozen=True)
class OciRequest:
    """What `cortex build --format oci` (or `cortex lock`) was asked to do."""

    host: Resolved  # the Cortexfile as the build host sees it (model sources, the store)
    image: Resolved  # as the image will load it (the format's defaults layer)
    cortexfile: bytes | None  # the bytes validated; None: the image waits for a mounted one
    architectures: tuple[str, ...]
    output: Path
    model_store: Path
    wheels_dir: Path | None = None
    tag: str | None = None
    push: bool = False
    push_to: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)


def request_from(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> OciRequest:
    check_reference("--tag", options.tag)
    check_reference("--push", options.push_to)
    image = views.of(FORMAT)
    return OciRequest(
        host=views.host,
        image=image,
        cortexfile=views.host.source if options.bake_cortexfile else None,
        architectures=architectures(options.platform, image),
        output=options.output,
        model_store=model_store(views, options, environ),
        wheels_dir=options.wheels_dir,
        tag=options.tag,
        push=options.push,
        push_to=options.push_to,
        environ=environ,
    )
