"""`cortex build --format update`: the disk image's root again, as a signed update for the devices flashed from it.

plan (the disk's, and the update's file names) -> the signing key (read before anything long) -> the device
root, as the disk target makes it -> its ext4 file system, zstd-compressed, with the kernel and initrd beside it ->
manifest.json -> SHA256SUMS -> its signature; every file renamed into the output folder once all are written,
SHA256SUMS last.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin
from menlo_cortex.cortexfile.hashing import config_hash
from menlo_cortex.runtime.models.model_store import file_sha256
from menlo_cortex.runtime.update.carry import WIFI_CONFIG
from menlo_cortex.runtime.update.manifest import MANIFEST, PGP_SIGNATURE, SSH_SIGNATURE, SUMS, Manifest, Payload

from ...artifacts import publish, staging
from ..disk.build import device_root, disk_sizes, wifi_psk
from ..disk.layout import MIB, BootFile, root_file_system
from ..disk.render import kernel_folder
from ..platform import with_platform
from .artifact import push_update
from .plan import UpdatePlan, make_update_plan
from .request import UpdateRequest
from .sign import SigningError, SigningKey


@dataclass(frozen=True)
class Update:
    folder: Path
    manifest: Manifest
    signature: Path
    pushed: str | None = None  # the line skopeo's push printed


def build(update_request: UpdateRequest) -> Update:
    request = update_request.disk
    resolved = with_platform(request.resolved, request.platform)
    update = make_update_plan(resolved, config_hash(resolved.config))
    plan = update.disk
    try:
        key = SigningKey.load(update_request.sign_key, request.environ)
    except SigningError as exc:  # a usage error: exit 2, before anything long
        raise ConfigError([Diagnostic(Origin("flag --sign-key"), "", str(exc))]) from None
    if update_request.push_to == "" or "@" in (update_request.push_to or ""):
        message = "an update is pushed as an OCI artifact to a reference: --push REGISTRY/REPOSITORY:TAG"
        raise ConfigError([Diagnostic(Origin("flag --push"), "", message)])
    psk = wifi_psk(resolved, request.environ)
    request.output.mkdir(parents=True, exist_ok=True)
    with staging(request.output, update.stem) as work:
        device = device_root(request, resolved, plan, psk, work)
        (device.folder / WIFI_CONFIG).unlink(missing_ok=True)  # a device's Wi-Fi key stays on it (carried)
        root_mib = disk_sizes(resolved, plan, device.folder).root
        root = root_file_system(plan, device.folder, work / "root.ext4", root_mib, device.epoch)
        files = _payload_files(update, device.boot, root, work / "out")
        shutil.rmtree(device.folder)
        manifest = _manifest(update, files, root_mib * MIB)
        (work / "out" / MANIFEST).write_text(manifest.encode(), encoding="utf-8")
        sums = work / "out" / SUMS
        names = sorted(path.name for path in (work / "out").iterdir())
        sums.write_text("".join(f"{file_sha256(work / 'out' / name)}  {name}\n" for name in names), encoding="utf-8")
        signature = key.sign(sums)
        other = request.output / (PGP_SIGNATURE if signature.name == SSH_SIGNATURE else SSH_SIGNATURE)
        other.unlink(missing_ok=True)  # an earlier build's other kind of signature, over other sums
        for name in [*names, signature.name, SUMS]:  # SHA256SUMS last: a device reading now finds the old one whole
            # The root holds what the image holds (its Cortexfile, secrets baked by the bundle): for the builder and
            # the server that hands it to the devices, not every user.
            os.chmod(work / "out" / name, 0o600)
            publish(work / "out" / name, request.output / name)
    pushed = None
    if update_request.push_to:
        pushed = push_update(request.output, [*names, signature.name, SUMS], update_request.push_to, request.environ)
    return Update(request.output, manifest, request.output / signature.name, pushed)


def _payload_files(update: UpdatePlan, boot: dict[str, BootFile], root: Path, out: Path) -> dict[str, Path]:
    out.mkdir()
    compressed = out / update.root_file
    _zstd(root, compressed)
    root.unlink()
    at = kernel_folder(update.disk)
    files = {"root": compressed}
    for key, name in (("kernel", "vmlinuz"), ("initrd", "initrd.img")):
        source = boot[f"{at}{name}"].source
        assert source is not None  # boot_files: the kernel and initrd are the root's files
        files[key] = out / update.boot_file(name)
        shutil.copyfile(source, files[key])
    return files


def _manifest(update: UpdatePlan, files: dict[str, Path], root_bytes: int) -> Manifest:
    def payload(key: str) -> Payload:
        path = files[key]
        return Payload(path.name, file_sha256(path), path.stat().st_size)

    plan = update.disk
    return Manifest(
        image_id=plan.image_id,
        architecture=plan.architecture,
        version=update.version,
        root=payload("root"),
        root_bytes=root_bytes,
        kernel=payload("kernel"),
        initrd=payload("initrd"),
        boot_options=plan.boot_options,
    )


def _zstd(source: Path, dest: Path) -> None:
    command = ["zstd", "-q", "-T0", "-10", "--no-progress", "-f", str(source), "-o", str(dest)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)
    except FileNotFoundError:
        raise RuntimeError("zstd is not installed: it compresses the update") from None
    if done.returncode != 0:
        raise RuntimeError(f"zstd failed: {done.stderr.strip()[-500:]}")
