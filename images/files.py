"""Placing host files (wheels, models) into a build folder without copying gigabytes when a link will do."""

from __future__ import annotations

import shutil
from pathlib import Path


def link_or_copy(source: Path, dest: Path) -> None:
    """`dest` becomes `source`'s content: a hard link where the file system allows it, else a copy."""
    dest.unlink(missing_ok=True)
    try:
        dest.hardlink_to(source)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, dest)
