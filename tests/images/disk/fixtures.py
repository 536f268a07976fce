"""Real parts for the image and boot tests: device images built by the real `cortex build --format disk`
(the test model baked in, an SSH key of the test's own), and an SSH client into a booted one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.git_remote import Certificate

CHECKOUT = (sys.executable, "-m", "menlo_cortex")  # this checkout's cortex (else an installed one's path)

SECTOR = 512
_MTOOLS = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
GUEST_PORT = 39281  # the Cortexfile's default port: the image listens there on every interface
VERSION = "1.4.2"  # the image's build.version
CORTEXFILE = """\
version: 1
models:
  - id: gemma
    preset: gemma3-270m-q4km
    context_size: 512
target:
  hardware: {hardware}
build:
  version: {version}
device:
  hostname: cortex-test
  ssh:
    enabled: true
    authorized_keys:
      - {public_key}
{updates}{extra}"""
# Signed updates from a folder the test serves over plain http on the host's loopback, signed with the image's key.
# The boot test starts a round as it serves each update; the timer's own rounds (under emulation, 6-12 s of the
# guest's CPU each) come every two minutes.
UPDATES = """\
  updates:
    url: http://10.0.2.2:{port}/
    trusted_keys:
      - {public_key}
    interval_s: 120
    ready_timeout_s: 1200
"""
# Follows a repository the test serves over https on the host's loopback (10.0.2.2 to a qemu guest), with a
# certificate of its own, trusting commits signed with the image's own SSH key.
SYNC = """\
sync:
  repository: https://10.0.2.2:{port}/fleet.git
  interval_s: 10
  trusted_keys:
    - {public_key}
  ca_certificates: |
{pem}"""


@dataclass(frozen=True)
class Image:
    folder: Path  # the build's output folder
    cortexfile: Path
    ssh_key: Path  # the private key whose public half the image authorizes
    name: str
    sync_port: int | None = None  # the loopback port its Cortexfile's sync repository is served on
    sync_certificate: Certificate | None = None  # the certificate that repository is served with
    update_port: int | None = None  # the loopback port its device.updates.url is served on
    command: tuple[str, ...] = CHECKOUT  # the cortex that built it

    @property
    def img(self) -> Path:
        return self.folder / f"{self.name}.img"

    def sibling(self, suffix: str) -> Path:
        return self.folder / f"{self.name}{suffix}"


def needs_image_tools() -> None:
    if os.geteuid() != 0 or shutil.which("debootstrap") is None or shutil.which("bmaptool") is None:
        pytest.skip("needs root, debootstrap and bmap-tools (scripts/setup.sh installs them)")


def ssh_key(folder: Path) -> Path:
    key = folder / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cortex-test", "-f", str(key)], check=True)
    return key


def write_cortexfile(
    folder: Path, key: Path, hardware: str = "x86-64-uefi", extra: str = "", update_port: int | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Cortexfile.yaml"
    updates = "" if update_port is None else UPDATES.format(port=update_port, public_key=public_key(key))
    text = CORTEXFILE.format(hardware=hardware, public_key=public_key(key), extra=extra, version=VERSION,
                             updates=updates)  # fmt: skip
    path.write_text(text, encoding="utf-8")
    return path


def public_key(key: Path) -> str:
    return key.with_suffix(".pub").read_text(encoding="utf-8").strip()


def run_build(
    cortexfile: Path, output: Path, store: Path, *args: str, cortex: Sequence[str] = CHECKOUT, format: str = "disk"
) -> subprocess.CompletedProcess[str]:
    command = [*cortex, "build", "-f", str(cortexfile), "--format", format]
    command += ["-o", str(output), "--datapath", str(store), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)


def build_image(
    folder: Path,
    store: Path,
    hardware: str = "x86-64-uefi",
    name: str = "cortex-test-x86-64-uefi",
    sync_port: int | None = None,
    *,
    cortex: Sequence[str] = CHECKOUT,
    update_port: int | None = None,
) -> Image:
    key = ssh_key(folder)
    certificate = None if sync_port is None else Certificate(folder / "tls")
    extra = (
        ""
        if certificate is None
        else SYNC.format(port=sync_port, public_key=public_key(key), pem=textwrap.indent(certificate.pem, "    "))
    )
    cortexfile = write_cortexfile(folder, key, hardware, extra, update_port)
    done = run_build(cortexfile, folder / "out", store, cortex=cortex)
    assert done.returncode == 0, done.stderr[-3000:]
    return Image(folder / "out", cortexfile, key, name, sync_port, certificate, update_port, tuple(cortex))


def partitions(img: Path) -> dict[str, Any]:
    """The image's partition table as sfdisk reads it (label, id, partitions with start sectors)."""
    done = subprocess.run(["sfdisk", "--json", str(img)], capture_output=True, text=True, check=True, timeout=60)
    table: dict[str, Any] = json.loads(done.stdout)["partitiontable"]
    return table


def debugfs(img: Path, start: int, request: str) -> str:
    """A debugfs request on the ext4 file system starting at sector `start` (read in place, no mount)."""
    command = ["debugfs", "-R", request, f"{img}?offset={start * SECTOR}"]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120).stdout


def fat_paths(img: Path, start: int) -> set[str]:
    """Every path on the FAT file system starting at sector `start`, as mtools names them (::/EFI/...)."""
    command = ["mdir", "-/", "-b", "-i", f"{img}@@{start * SECTOR}", "::/"]
    return set(
        subprocess.run(command, capture_output=True, text=True, env=_MTOOLS, check=False, timeout=60).stdout.split()
    )


def fat_file(img: Path, start: int, name: str) -> str:
    command = ["mtype", "-i", f"{img}@@{start * SECTOR}", f"::/{name}"]
    return subprocess.run(command, capture_output=True, text=True, env=_MTOOLS, check=False, timeout=60).stdout


def fat_copy(img: Path, start: int, name: str, dest: Path) -> Path:
    """A file of the FAT partition at sector `start`, copied out byte for byte."""
    command = ["mcopy", "-n", "-i", f"{img}@@{start * SECTOR}", f"::/{name}", str(dest)]
    subprocess.run(command, check=True, env=_MTOOLS, timeout=120)
    return dest


def disk_copy(image: Path, dest: Path, grow_mib: int = 0) -> Path:
    """A sparse copy of an image to boot (the original stays as built), `grow_mib` larger: a bigger card."""
    subprocess.run(["cp", "--sparse=always", str(image), str(dest)], check=True, timeout=600)
    if grow_mib:
        with dest.open("r+b") as file:
            file.truncate(dest.stat().st_size + (grow_mib << 20))
    return dest


@dataclass(frozen=True)
class Ssh:
    key: Path
    port: int

    def run(self, command: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._base("ssh"), "-p", str(self.port), "root@127.0.0.1", command],
                              capture_output=True, text=True, check=False, timeout=timeout_s)  # fmt: skip

    def ok(self, command: str, timeout_s: float = 120) -> str:
        done = self.run(command, timeout_s)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        return done.stdout.strip()

    def api_key(self, timeout_s: float) -> str:
        """The key first boot made, read as root once SSH answers (the serial console never shows it)."""
        deadline = time.monotonic() + timeout_s
        while (done := self.run("grep -m1 '^cortex-' /etc/cortex/api-keys", 60)).returncode != 0:
            assert time.monotonic() < deadline, f"no API key over SSH in {timeout_s:.0f}s: {done.stderr}"
            time.sleep(3)
        return done.stdout.strip()

    def copy_in(self, source: Path, dest: str) -> None:
        command = [*self._base("scp"), "-r", "-P", str(self.port), str(source), f"root@127.0.0.1:{dest}"]
        subprocess.run(command, capture_output=True, check=True, timeout=900)

    def _base(self, program: str) -> list[str]:
        return [program, "-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=30", "-o", "BatchMode=yes"]  # fmt: skip
