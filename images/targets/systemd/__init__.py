"""`cortex build --format systemd`: an offline bundle with a hardened service (see bundle.build).

Baked models are found (or fetched) in the build host's own model store; the quadlet runs the image
`cortex build --format docker` tags by default for the same Cortexfile.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .. import BuildOptions, Views, default_tag, model_store
from .bundle import BuildRequest, build
from .plan import FORMAT


def request_from(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> BuildRequest:
    return BuildRequest(
        resolved=views.of(FORMAT),
        output=options.output,
        model_store=model_store(views, options, environ),
        wheels_dir=options.wheels_dir,
        platform=options.platform,
        image=f"localhost/{default_tag(views.of('docker'))}",
        environ=environ,
    )


def make(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> list[str]:
    """Build the bundle; the lines to print."""
    request = request_from(views, options, environ)
    request.output.mkdir(parents=True, exist_ok=True)
    bundle = build(request)
    size = sum(os.path.getsize(p) for p in bundle.folder.rglob("*") if p.is_file())
    return [
        f"{bundle.folder} ({size / 1e6:.0f} MB; install with: sudo {bundle.folder}/install.sh)",
        f"{bundle.tarball} sha256 {bundle.sha256}",
    ]
