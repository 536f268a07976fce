"""The Debian root as an image layer: the cached root of userland.root_spec, minus what a container never
uses (device nodes, documentation, caches, logs, the build host's name and resolver), with the dates
debootstrap stamped replaced by the build's, so two machines that build the same root write the same
layer."""

from __future__ import annotations

from pathlib import Path

from .layers import Tree

# The engine mounts its own /dev, /proc, /sys, /run and /tmp; the rest is never read by the service.
EMPTY = frozenset(
    {
        "boot", "dev", "proc", "run", "sys", "tmp", "var/tmp", "var/log", "var/cache", "var/lib/apt/lists",
        "usr/share/man", "usr/share/info", "usr/share/locale",
    }
)  # fmt: skip
# Written per container by the engine, or leftovers of the build: never from the build host.
DROPPED = frozenset({".complete", "debootstrap", "etc/hostname", "etc/resolv.conf", "etc/hosts"})
BACKUP_SUFFIXES = ("-old", "-")
BACKUP_FOLDERS = frozenset({"etc", "var/lib/dpkg"})
DOC = "usr/share/doc/"


# The service user the image runs as (the Dockerfile path's): named in passwd and group so tools that
# look it up find it; no login, no home of its own (the image sets HOME to the data folder).
SERVICE_UID = 10001
SERVICE_ACCOUNT = {
    "etc/passwd": f"cortex:x:{SERVICE_UID}:{SERVICE_UID}:Cortex appliance:/nonexistent:/usr/sbin/nologin\n",
    "etc/group": f"cortex:x:{SERVICE_UID}:\n",
}


def root_tree(root: Path, epoch: int) -> Tree:
    return Tree(root, empty=EMPTY, skip=_dropped, rewrite=lambda name, data: _rewritten(name, data, epoch))


def _rewritten(name: str, data: bytes, epoch: int) -> bytes | None:
    if name in SERVICE_ACCOUNT:
        return data + SERVICE_ACCOUNT[name].encode()
    return _dated(name, data, epoch)


def _dropped(name: str) -> bool:
    if name in DROPPED:
        return True
    parent = name.rpartition("/")[0]
    if parent in BACKUP_FOLDERS and name.endswith(BACKUP_SUFFIXES):  # passwd-, status-old: the state before
        return True
    # Documentation goes, except each package's copyright file (its licence, which travels with it).
    inside = name.removeprefix(DOC)
    return name.startswith(DOC) and "/" in inside and not inside.endswith("/copyright")


def _dated(name: str, data: bytes, epoch: int) -> bytes | None:
    """/etc/shadow's "last changed" day is the day debootstrap ran: the build's day instead."""
    if name != "etc/shadow":
        return None
    day = str(epoch // 86400)
    lines = []
    for line in data.decode().splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2]:
            fields[2] = day
        lines.append(":".join(fields))
    return ("\n".join(lines) + "\n").encode()
