"""The update target's request: what `cortex build --format update` was asked to do, typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import BuildOptions, Views
from ..disk.request import DiskRequest
from ..disk.request import request_from as disk_request
from .plan import FORMAT


@dataclass(frozen=True)
class UpdateRequest:
    disk: DiskRequest  # the root is the disk image's, built the same way
    sign_key: str | None  # a private key file, or a secret reference
    push_to: str | None = None  # `--push REF`: the registry reference the update is pushed to as an OCI artifact


def request_from(views: Views, options: BuildOptions, environ: Mapping[str, str]) -> UpdateRequest:
    push_to = options.push_to if options.push else None
    return UpdateRequest(disk_request(views, options, environ, FORMAT), options.sign_key, push_to)
