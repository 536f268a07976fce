"""`cortex build --format systemd`: an offline bundle with a hardened service (see build.build).

Baked models are found (or fetched) in the build host's own model store; the quadlet runs the image
`cortex build --format docker` tags by default for the same Cortexfile.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .. import BuildOptions, Views
from .build import build
from .plan import FORMAT
from .request import SystemdRequest, request_from

__all__ = ["FORMAT", "SystemdRequest", "make", "request_from"]


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
