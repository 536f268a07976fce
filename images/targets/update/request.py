"""The update target's request: what `cortex build --format update` was asked to do, typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import BuildOptions, Views, model_store
from ..disk.request import DiskRequest
from .plan import FORMAT


@dataclass(frozen=True)
class UpdateRequest:
    disk: DiskRequest  # the root is the disk image's, built the same way
    sign_key: str | None  # a private key file, or a secret reference


def request_from(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> UpdateRequest:
    disk = DiskRequest(
        resolved=views.of(FORMAT),
        output=options.output,
        model_store=model_store(views, options, environ),
        wheels_dir=options.wheels_dir,
        platform=options.platform,
        environ=environ,
    )
    return UpdateRequest(disk, options.sign_key)
