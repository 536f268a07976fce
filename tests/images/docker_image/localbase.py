"""A Debian base image made on this host with debootstrap, for machines that reach Debian's
archive but no container registry (air-gapped CI, the project's own test machines).

The root is trimmed like Debian's `-slim` images (no docs, man pages, locales, apt lists or
package caches) and cached as a tarball keyed by its inputs, then imported with `podman import`.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from menlo_cortex.images.debian import host_mirror

TRIM_VERSION = "1"
TRIMMED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt", "var/lib/apt/lists")
SLIM_DPKG_EXCLUDES = """# As in Debian's -slim images: packages installed later leave these out.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
"""


@dataclass(frozen=True)
class BaseSpec:
    suite: str = "bookworm"
    mirror: str = field(default_factory=host_mirror)
    architecture: str = "amd64"

    @property
    def key(self) -> str:
        text = "|".join((self.suite, self.mirror, self.architecture, TRIM_VERSION, SLIM_DPKG_EXCLUDES))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def image(self) -> str:
        return f"localhost/cortex-base/debian:{self.suite}-{self.key}"


def rootfs_tarball(spec: BaseSpec, cache: Path) -> Path:
    """The trimmed root as a tarball in `cache`, made once per spec."""
    tarball = cache / f"debian-{spec.suite}-{spec.architecture}-{spec.key}.tar"
    if tarball.is_file():
        return tarball
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / f"root-{spec.key}.partial"
    shutil.rmtree(root, ignore_errors=True)
    command = ["debootstrap", "--variant=minbase", f"--arch={spec.architecture}", spec.suite, str(root), spec.mirror]
    subprocess.run(command, check=True, capture_output=True)
    _trim(root)
    partial = tarball.with_suffix(".partial")
    with tarfile.open(partial, "w") as archive:
        archive.add(root, arcname=".")
    partial.replace(tarball)
    shutil.rmtree(root)
    return tarball


def _trim(root: Path) -> None:
    for relative in TRIMMED:
        folder = root / relative
        if folder.is_dir():
            for entry in folder.iterdir():
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    (root / "etc/dpkg/dpkg.cfg.d/slim").write_text(SLIM_DPKG_EXCLUDES, encoding="utf-8")


def ensure_base_image(spec: BaseSpec, cache: Path, podman: str = "podman") -> str:
    """Import the cached root into Podman's storage unless the image is there; its name."""
    exists = subprocess.run([podman, "image", "exists", spec.image], check=False)
    if exists.returncode != 0:
        tarball = rootfs_tarball(spec, cache)
        subprocess.run([podman, "import", str(tarball), spec.image], check=True, capture_output=True)
    return spec.image
