"""Real parts for the install and boot tests: the cached Debian root, bundles built from the real
wheels and test model, and copies of the root to install into."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from menlo_cortex.cortexfile.boards import load_board
from menlo_cortex.images.debian import SUITE, RootSpec
from menlo_cortex.images.debian import debian_root as shared_root
from menlo_cortex.images.targets.disk.userland import root_spec
from menlo_cortex.images.targets.systemd.build import Bundle, build
from menlo_cortex.images.targets.systemd.request import SystemdRequest

from .conftest import load_systemd

API_KEY = "test-key-0123456789abcdef"
BASE_CORTEXFILE = """\
version: 1
server:
  host: 0.0.0.0
  port: 8000
  auth:
    api_key_file: /etc/cortex/api-keys
models:
  - id: gemma
    preset: gemma3-270m-q4km
    context_size: {context}
{extra}"""


@dataclass(frozen=True)
class Built:
    bundle: Bundle
    cortexfile: bytes


def debian_root() -> Path:
    """The x86-64 device root the disk image is made from (images/debian.py, cached): one Debian root
    for the bundle's install tests and the device image."""
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.skip("needs root and debootstrap (scripts/setup.sh installs it)")
    return shared_root(root_spec(load_board("x86-64-uefi")))


# What a Debian host that runs the bundle has: systemd, its python3, OpenMP and kill.
HOST_PACKAGES = ("systemd-sysv", "python3", "libgomp1", "procps", "ca-certificates")


def release_root(suite: str) -> Path:
    """A Debian host root of `suite` (cached): the device root above for the default release (trixie: Debian
    13, what Raspberry Pi OS trixie is based on, Python 3.13), a plain host root for another (bookworm: 3.11)."""
    if suite == SUITE:
        return debian_root()
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.skip("needs root and debootstrap (scripts/setup.sh installs it)")
    return shared_root(RootSpec("amd64", HOST_PACKAGES, suite=suite))


def build_bundle(folder: Path, store: Path, *, context: int = 512, extra: str = "") -> Built:
    folder.mkdir(parents=True, exist_ok=True)
    cortexfile = folder / "Cortexfile.yaml"
    cortexfile.write_text(BASE_CORTEXFILE.format(context=context, extra=extra), encoding="utf-8")
    bundle = build(SystemdRequest(load_systemd(cortexfile), folder / "out", store))
    return Built(bundle, cortexfile.read_bytes())


def copy_root(source: Path, dest: Path) -> Path:
    subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(dest)], check=True, timeout=600)
    return dest


def write_api_key(root: Path) -> None:
    keys = root / "etc" / "cortex" / "api-keys"
    keys.parent.mkdir(parents=True, exist_ok=True)
    keys.write_text(API_KEY + "\n", encoding="utf-8")
    keys.chmod(0o600)


def install(bundle: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(bundle / "install.sh"), "--root", str(root), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)


def uninstall(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = root / "opt" / "cortex" / "current" / "uninstall.sh"
    command = [str(script), "--root", str(root), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
