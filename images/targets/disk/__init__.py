"""`cortex build --format disk`: a flashable disk image for a board of recipes/hardware (see build.build).

Baked models are found (or fetched) in the build host's model store, as for every format.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import BuildOptions, Views
from .build import build
from .plan import FORMAT
from .request import DiskRequest, request_from

__all__ = ["FORMAT", "DiskRequest", "make", "request_from"]


def make(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> list[str]:
    """Build the image; the lines to print."""
    image = build(request_from(views, options, environ))
    size = image.image.stat().st_size
    lines = [
        f"{image.image} ({size >> 20} MiB, {image.used_bytes >> 20} MiB in use; board {image.plan.board.name})",
        f"{image.compressed} ({image.compressed.stat().st_size >> 20} MiB), {image.bmap.name}, {image.checksums.name}, "
        f"{image.sbom.name} (SPDX 2.3)",
        f"flash it: sudo bmaptool copy {image.compressed} /dev/sdX",
        f"      or: zstd -dc {image.compressed} | sudo dd of=/dev/sdX bs=4M conv=fsync",
    ]
    if image.plan.generate_key:
        lines.append("first boot makes the API key and shows it once on the screen (kept in /etc/cortex/api-keys)")
    return lines
