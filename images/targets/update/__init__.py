"""`cortex build --format update`: a signed update of a disk image's whole root, for the devices flashed from it
(see build.build, and runtime/update for the device's side)."""

from __future__ import annotations

from collections.abc import Mapping

from .. import BuildOptions, Views
from .build import build
from .plan import FORMAT
from .request import UpdateRequest, request_from

__all__ = ["FORMAT", "UpdateRequest", "make", "request_from"]


def make(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> list[str]:
    """Build the update; the lines to print."""
    update = build(request_from(views, options, environ))
    manifest = update.manifest
    size = sum(payload.size for payload in manifest.payloads)
    return [
        f"{update.folder}: version {manifest.version} of {manifest.image_id} ({size >> 20} MiB to download, "
        f"{manifest.root_bytes >> 20} MiB root), signed ({update.signature.name})",
        update.pushed
        or "serve this folder over http(s) at the devices' device.updates.url (or --push it to a registry)",
    ]
