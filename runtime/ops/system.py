"""What this machine runs: the runtime's version and, on a Cortex device, its image's kind and version
(os-release's IMAGE_ID and IMAGE_VERSION, which `cortex build --format disk` writes from build.version)."""

from __future__ import annotations

import platform

from menlo_cortex import __version__

from .text import printable

IMAGE_FIELDS = (("IMAGE_VERSION", "version"), ("IMAGE_ID", "image"))


def system_info() -> dict[str, str]:
    info = {"runtime_version": __version__}
    try:
        release = platform.freedesktop_os_release()
    except OSError:  # no os-release: not a device image
        return info
    for field, name in IMAGE_FIELDS:
        if release.get(field):
            info[name] = printable(release[field], 64)
    return info
