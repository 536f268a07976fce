"""Real parts for the image and boot tests: device images built by the real `cortex build --format disk`
(the test model baked in, an SSH key of the test's own), and an SSH client into a booted one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

GUEST_PORT = 39281  # the Cortexfile's default port: the image listens there on every interface
CORTEXFILE = """\
version: 1
models:
  - id: gemma
    preset: gemma3-270m-q4km
    context_size: 512
target:
  hardware: {hardware}
device:
  hostname: cortex-test
  ssh:
    enabled: true
    authorized_keys:
      - {public_key}
{extra}"""


@dataclass(frozen=True)
class Image:
    folder: Path  # the build's output folder
    cortexfile: Path
    ssh_key: Path  # the private key whose public half the image authorizes
    name: str

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


def write_cortexfile(folder: Path, key: Path, hardware: str = "x86-64-uefi", extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    public = key.with_suffix(".pub").read_text(encoding="utf-8").strip()
    path = folder / "Cortexfile.yaml"
    path.write_text(CORTEXFILE.format(hardware=hardware, public_key=public, extra=extra), encoding="utf-8")
    return path


def run_build(cortexfile: Path, output: Path, store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "menlo_cortex", "build", "-f", str(cortexfile), "--format", "disk"]
    command += ["-o", str(output), "--model-store", str(store), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)


def build_image(
    folder: Path, store: Path, hardware: str = "x86-64-uefi", name: str = "cortex-test-x86-64-uefi"
) -> Image:
    key = ssh_key(folder)
    cortexfile = write_cortexfile(folder, key, hardware)
    done = run_build(cortexfile, folder / "out", store)
    assert done.returncode == 0, done.stderr[-3000:]
    return Image(folder / "out", cortexfile, key, name)


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

    def copy_in(self, source: Path, dest: str) -> None:
        command = [*self._base("scp"), "-r", "-P", str(self.port), str(source), f"root@127.0.0.1:{dest}"]
        subprocess.run(command, capture_output=True, check=True, timeout=900)

    def _base(self, program: str) -> list[str]:
        return [program, "-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=30", "-o", "BatchMode=yes"]  # fmt: skip
