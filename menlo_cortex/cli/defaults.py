"""`--defaults NAME`: load the Cortexfile over an output format's defaults layer (what a
container image's entrypoint passes), plus the container-only checks that go with it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from menlo_cortex.cortexfile import formats
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin, Severity
from menlo_cortex.runtime.ops.mounts import MOUNTINFO, mount_points


def add_defaults_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--defaults",
        choices=formats.names(),
        help="load over this output format's defaults (e.g. docker: listen on 0.0.0.0, data in /var/lib/cortex)",
    )


def loader_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for the loader: the chosen format's defaults layer, if any."""
    name = getattr(args, "defaults", None)
    return {"format_defaults": formats.get(name).loader_argument()} if name else {}


def require_file(args: argparse.Namespace) -> None:
    """With format defaults (inside an image), a missing Cortexfile gets the format's how-to."""
    name = getattr(args, "defaults", None)
    if name and not Path(args.file).exists():
        hint = formats.get(name).missing_file_hint
        raise ConfigError([Diagnostic(Origin(str(args.file)), "", "no Cortexfile here", hint)])


def mount_point_warning(path: Path, mountinfo: Path = MOUNTINFO) -> Diagnostic | None:
    """A Cortexfile that is itself a mount point (a single-file bind mount) keeps the old inode
    after an editor's save-by-rename, so hot reload never sees the edit."""
    target = os.path.realpath(path)
    if target not in mount_points(mountinfo):
        return None
    folder = str(Path(target).parent)
    return Diagnostic(
        Origin(str(path)),
        "",
        "the Cortexfile is a single-file mount: edits saved by rename will not reach the server",
        f"mount its folder instead (e.g. -v ./cortex:{folder}:ro)",
        Severity.warning,
    )
