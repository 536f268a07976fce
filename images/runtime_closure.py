"""What of a Debian root a container needs at run time: the packages its service runs on and everything they
depend on, except the packages only maintainer scripts run (a container installs nothing: it gets no package
manager, shell or coreutils). Read from the root's dpkg database: `Depends` and `Pre-Depends` (the first
installed choice of an alternative, or a package that provides it), and each package's list of files."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .debian import control_fields, installed_paragraphs

DPKG = Path("var/lib/dpkg")


@dataclass(frozen=True)
class Closure:
    kept: frozenset[str]  # package names
    dropped_files: frozenset[str]  # paths relative to the root, as the root holds them (no leading /)
    dropped_packages: frozenset[str]

    def keeps(self, name: str) -> bool:
        """`name` (relative to the root) goes into the image."""
        if name in self.dropped_files:
            return False
        folder, _, file = name.rpartition("/")
        if folder == f"{DPKG}/info":  # a dropped package's maintainer scripts and file lists: NAME[:ARCH].SUFFIX
            return file.rpartition(".")[0].partition(":")[0] not in self.dropped_packages
        return True

    def status(self, data: bytes) -> bytes:
        """dpkg's status with the kept packages' paragraphs only: what scanners and the SBOM read."""
        paragraphs = data.decode("utf-8", errors="replace").split("\n\n")
        kept = [p for p in paragraphs if p.strip() and control_fields(p).get("Package") in self.kept]
        return ("\n\n".join(kept) + "\n").encode()


class ClosureError(RuntimeError):
    """The root lacks a package the image needs; the message names it."""


def runtime_closure(root: Path, wanted: Iterable[str], install_only: Iterable[str]) -> Closure:
    root = Path(os.path.realpath(root))  # so that a listed path's folder, resolved, is compared with the root's
    packages = {fields["Package"]: fields for fields in installed_paragraphs(root)}
    missing = [name for name in wanted if name not in packages]
    if missing:
        raise ClosureError(
            f"the Debian root at {root} lacks {', '.join(missing)}: rebuild it (its cache may be damaged)"
        )
    provided = {name: package for package, fields in packages.items() for name in _provides(fields)}
    skipped, kept, todo = frozenset(install_only), set[str](), list(wanted)
    while todo:
        name = todo.pop()
        name = name if name in packages else provided.get(name, name)
        if name in kept or name in skipped or name not in packages:
            continue
        kept.add(name)
        todo += _dependencies(packages[name], packages, provided)
    dropped = frozenset(packages) - kept
    owned = {path for name in kept for path in _files(root, name)}
    files = {path for name in dropped for path in _files(root, name)} - owned
    return Closure(frozenset(kept), frozenset(p for p in files if _is_leaf(root / p)), dropped)


def _provides(fields: dict[str, str]) -> list[str]:
    return [_name(part) for part in fields.get("Provides", "").split(",") if part.strip()]


def _name(relation: str) -> str:
    """`libfoo:any (>= 1.2)` -> libfoo"""
    return relation.strip().split(" ")[0].split(":")[0]


def _dependencies(fields: dict[str, str], packages: dict[str, dict[str, str]], provided: dict[str, str]) -> list[str]:
    found = []
    for field in ("Pre-Depends", "Depends"):
        for relation in fields.get(field, "").split(","):
            choices = [_name(choice) for choice in relation.split("|") if choice.strip()]
            installed = next((c for c in choices if c in packages or c in provided), None)
            if installed is not None:
                found.append(installed)
    return found


def _files(root: Path, name: str) -> list[str]:
    """The package's files as the root holds them: a listed /bin/x is usr/bin/x where /bin links to usr/bin."""
    info = root / DPKG / "info"
    for listing in (info / f"{name}.list", *sorted(info.glob(f"{name}:*.list"))):
        if listing.is_file():
            return [_physical(root, line) for line in listing.read_text(errors="replace").splitlines() if line]
    return []


def _physical(root: Path, listed: str) -> str:
    """A folder that links out of the root (an absolute link resolved on the build host) keeps the listed path."""
    folder, _, file = listed.strip("/").rpartition("/")
    real = os.path.realpath(root / folder) if folder else str(root)
    inside = os.path.relpath(real, root)
    if inside.startswith(".."):
        return listed.strip("/")
    return file if inside == "." else f"{inside}/{file}"


def _is_leaf(path: Path) -> bool:
    """A file or a link, never a folder (a folder a dropped package lists may hold kept files)."""
    return path.is_symlink() or path.is_file()
