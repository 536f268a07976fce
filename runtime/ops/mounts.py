"""Mount points of this process's mount namespace, from /proc/self/mountinfo (stdlib only, so the
CLI's checks can use it without the server's dependencies)."""

from __future__ import annotations

from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


def mount_points(mountinfo: Path = MOUNTINFO) -> frozenset[str]:
    """Every mount point; empty where mountinfo cannot be read (not Linux, no /proc)."""
    try:
        lines = mountinfo.read_text(encoding="utf-8").splitlines()
    except OSError:
        return frozenset()
    return frozenset(unescape(line.split()[4]) for line in lines if len(line.split()) > 4)


def unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (`\\040`)."""
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
