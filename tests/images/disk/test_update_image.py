"""The update `cortex build --format update` writes, read without a device: its sums hold, its signature verifies
with the fleet's key alone, its manifest and root are the next version's, the same inputs give the same bytes,
and a build without a signing key or a version is refused before anything is built."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .fixtures import VERSION, Image, public_key, run_build
from .updates import SECOND

pytestmark = pytest.mark.slow


def test_the_update_is_signed_and_holds_the_next_version(second_update: Path, device_image: Image) -> None:
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=second_update, capture_output=True, text=True,
                           check=False, timeout=300)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    allowed = second_update.parent / "allowed_signers"
    allowed.write_text(f'fleet namespaces="cortex-update" {public_key(device_image.ssh_key)}\n')
    command = ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "fleet", "-n", "cortex-update", "-s"]
    with (second_update / "SHA256SUMS").open("rb") as sums:
        verified = subprocess.run([*command, str(second_update / "SHA256SUMS.sig")], stdin=sums, capture_output=True,
                                  check=False, timeout=60)  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    manifest = json.loads((second_update / "manifest.json").read_text())
    assert (manifest["image_id"], manifest["architecture"], manifest["version"]) == ("cortex-x86-64-uefi", "amd64",
                                                                                    SECOND)  # fmt: skip
    assert manifest["boot_options"].endswith("console=tty0 console=ttyS0,115200")
    root = second_update.parent / "root.ext4"
    subprocess.run(["zstd", "-q", "-d", "-f", str(second_update / manifest["root"]["file"]), "-o", str(root)],
                   check=True, timeout=600)  # fmt: skip
    assert root.stat().st_size == manifest["root_bytes"]
    release = subprocess.run(["debugfs", "-R", "cat /usr/lib/os-release", str(root)], capture_output=True, text=True,
                             check=False, timeout=60).stdout  # fmt: skip
    assert release.splitlines()[-2:] == ["IMAGE_ID=cortex-x86-64-uefi", f"IMAGE_VERSION={SECOND}"]
    root.unlink()


def test_the_same_inputs_give_the_same_update(
    second_update: Path, device_image: Image, tmp_path: Path, test_data_dir: Path
) -> None:
    cortexfile, key = second_update.parent / "Cortexfile.yaml", ("--sign-key", str(device_image.ssh_key))
    done = run_build(cortexfile, tmp_path / "again", test_data_dir, *key, cortex=device_image.command, format="update")
    assert done.returncode == 0, done.stderr[-2000:]
    again = tmp_path / "again"
    for name in ("SHA256SUMS", "SHA256SUMS.sig"):  # an Ed25519 signature is deterministic
        assert (again / name).read_bytes() == (second_update / name).read_bytes()


def test_an_update_needs_a_signing_key_and_a_version(device_image: Image, tmp_path: Path, test_data_dir: Path) -> None:
    no_key = run_build(device_image.cortexfile, tmp_path / "a", test_data_dir, format="update")
    assert no_key.returncode == 2, no_key.stderr
    assert "flag --sign-key: an update is signed: give the private key with --sign-key FILE" in no_key.stderr
    public = tmp_path / "public.pub"
    public.write_text(public_key(device_image.ssh_key) + "\n")
    wrong = run_build(
        device_image.cortexfile, tmp_path / "b", test_data_dir, "--sign-key", str(public), format="update"
    )
    assert wrong.returncode == 2, wrong.stderr
    assert "neither an OpenSSH private key nor an armored OpenPGP secret key" in wrong.stderr
    unversioned = tmp_path / "Cortexfile.yaml"
    unversioned.write_text(
        device_image.cortexfile.read_text().replace(f"  version: {VERSION}\n", "  bake_models: true\n")
    )
    key = ("--sign-key", str(device_image.ssh_key))
    refused = run_build(unversioned, tmp_path / "c", test_data_dir, *key, format="update")
    assert refused.returncode == 2, refused.stderr
    assert "build.version: updates are ordered by build.version" in refused.stderr
    for folder in ("a", "b", "c"):  # nothing half-written
        assert not (tmp_path / folder).exists() or list((tmp_path / folder).iterdir()) == []
