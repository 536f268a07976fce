"""The Debian root as an image layer: the cached root of userland.root_spec, minus what a container never
uses (device nodes, documentation, caches, logs, the build host's name and resolver, and the packages the
service does not run on: see images/runtime_closure.py), with the dates debootstrap stamped replaced by the
build's, so two machines that build the same root write the same layer."""

from __future__ import annotations

import re
from pathlib import Path

from ...runtime_closure import DPKG, Closure, runtime_closure
from .layers import Tree
from .userland import RUNTIME_PACKAGES

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
# Never loaded by the service: glibc's iconv modules (Python has its own codecs), the standard library's
# regression-test support and help() topics.
UNUSED = re.compile(r"usr/lib/[a-z0-9_]+-linux-gnu/gconv/.+|usr/lib/python3\.[0-9]+/(test|pydoc_data)/.+")


# The service user the image runs as (the Dockerfile path's): named in passwd and group so tools that
# look it up find it; no login, no home of its own (the image sets HOME to the data folder).
SERVICE_UID = 10001
SERVICE_ACCOUNT = {
    "etc/passwd": f"cortex:x:{SERVICE_UID}:{SERVICE_UID}:Cortex appliance:/nonexistent:/usr/sbin/nologin\n",
    "etc/group": f"cortex:x:{SERVICE_UID}:\n",
}


# What the service runs on besides userland's packages: llama.cpp's C++ runtime, and base-files (os-release, and
# the /lib64 link that holds the dynamic loader's path every program names).
KEPT_PACKAGES = (*RUNTIME_PACKAGES, "libstdc++6", "base-files")
# Depended on only for their maintainer scripts (byte-compiling, debconf questions; base-files' awk): a container
# runs none. With them go dpkg, apt, perl, bash and coreutils: the image has no shell. openssl stays: its
# /usr/lib/ssl links are where OpenSSL, and so Python, looks for the CA certificates by default.
INSTALL_ONLY = ("dpkg", "debconf", "perl-base", "mawk")
# Read whole and rewritten whatever their size (a larger file is otherwise streamed as it is).
REWRITTEN = frozenset({*SERVICE_ACCOUNT, "etc/shadow", f"{DPKG}/status"})
# Bump when images/runtime_closure.py changes what it keeps: the layer's cache key holds it.
TRIM_REVISION = 2
TRIM = (TRIM_REVISION, KEPT_PACKAGES, INSTALL_ONLY, UNUSED.pattern)  # what decides the layer besides the root


def kept_packages(root: Path) -> Closure:
    return runtime_closure(root, KEPT_PACKAGES, INSTALL_ONLY)


def root_tree(root: Path, epoch: int, closure: Closure) -> Tree:
    def skip(name: str) -> bool:
        return _dropped(name) or not closure.keeps(name)

    def rewrite(name: str, data: bytes) -> bytes | None:
        return _rewritten(name, data, epoch, closure)

    return Tree(root, empty=EMPTY, skip=skip, rewrite=rewrite, rewritten=REWRITTEN)


def _rewritten(name: str, data: bytes, epoch: int, closure: Closure) -> bytes | None:
    if name in SERVICE_ACCOUNT:
        return data + SERVICE_ACCOUNT[name].encode()
    if name == f"{DPKG}/status":
        return closure.status(data)
    return _dated(name, data, epoch)


def _dropped(name: str) -> bool:
    if name in DROPPED or UNUSED.fullmatch(name):
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
