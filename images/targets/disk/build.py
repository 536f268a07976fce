"""`cortex build --format disk`: the host step. A flat list of steps, each a function:

plan -> the systemd bundle (the same one `--format systemd` makes, started with the disk defaults) ->
a private copy of the cached Debian root for the board -> the bundle's own `install.sh --root` ->
the device's files and units -> the boot files -> the disk image -> its block map, compressed copy and
checksums, renamed into the output folder only when all are complete.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic
from menlo_cortex.cortexfile.hashing import config_hash
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.cortexfile.secrets import SecretUnavailable
from menlo_cortex.runtime.models.model_store import file_sha256
from menlo_cortex.runtime.models.pins import public_source

from ... import sbom
from ...artifacts import publish, staging, text, write_tree
from ...debian import copy_root, debian_root, installed_packages
from ...reproducible import source_epoch
from ..platform import with_platform
from ..systemd.build import build as build_bundle
from ..systemd.request import SystemdRequest
from .layout import MIB, OFFSET_MIB, BootFile, Sizes, clamp_times, content_mib, make_disk
from .plan import BOOT_MIB, DATA_MIB, FORMAT, DiskPlan, make_plan
from .render import BOOT_SCRIPT_SOURCE, enabled_units, kernel_folder, render
from .request import DiskRequest
from .uboot_script import script_image
from .userland import root_spec

EFI_LOADERS = {"amd64": ("systemd-bootx64.efi", "BOOTX64.EFI"), "arm64": ("systemd-bootaa64.efi", "BOOTAA64.EFI")}
# raspi-firmware's hooks copy the newest kernel to /boot/firmware and rewrite its config.txt on a kernel upgrade:
# on a device whose slots each boot their own kernel through U-Boot, only an update changes a kernel.
RASPI_FIRMWARE_HOOKS = (
    "etc/kernel/postinst.d/z50-raspi-firmware",
    "etc/kernel/postrm.d/z50-raspi-firmware",
    "etc/initramfs/post-update.d/z50-raspi-firmware",
)
HEADROOM_MIB = 512  # free space in an image of the default size, before first boot grows it
SPACE_FACTOR = 3  # root copy, file system image and disk image exist at once


class DiskError(RuntimeError):
    """A disk image could not be built; the message names the cause."""


@dataclass(frozen=True)
class DiskImage:
    image: Path
    compressed: Path
    bmap: Path
    checksums: Path
    sbom: Path  # SPDX 2.3
    plan: DiskPlan
    used_bytes: int


def build(request: DiskRequest) -> DiskImage:
    resolved = with_platform(request.resolved, request.platform)
    plan = make_plan(resolved, config_hash(resolved.config))
    psk = wifi_psk(resolved, request.environ)
    with staging(request.output, plan.name) as work:
        return _assemble(request, resolved, plan, psk, work)


@dataclass(frozen=True)
class DeviceRoot:
    """The device's root folder, whole, and what the boot partition takes from it."""

    folder: Path
    boot: dict[str, BootFile]
    epoch: int


def device_root(request: DiskRequest, resolved: Resolved, plan: DiskPlan, psk: str | None, work: Path) -> DeviceRoot:
    """The bundle installed by its own install.sh into a copy of the board's cached Debian root, the device's files
    and units, the initramfs again when the board needs modules in it; file times clamped to the source epoch."""
    epoch = source_epoch([request.resolved.path], request.environ)
    bundle = build_bundle(
        SystemdRequest(
            resolved, work / "bundle", request.model_store, request.wheels_dir, environ=request.environ, defaults=FORMAT
        )
    )
    spec = root_spec(plan.board, plan.sync_packages, plan.release, plan.mirror)
    root = copy_root(debian_root(spec), work / "root")
    _install(bundle.folder, root, epoch)
    shutil.rmtree(bundle.folder.parent)
    rendered = render(plan, psk)
    configure_device(plan, root, rendered.root)
    if plan.board.initramfs_modules:
        _update_initramfs(root, epoch)
    boot = {**boot_files(plan, root), **{name: BootFile(None, text) for name, text in rendered.boot.items()}}
    if BOOT_SCRIPT_SOURCE in rendered.boot:
        boot["boot.scr"] = BootFile(None, data=script_image(rendered.boot[BOOT_SCRIPT_SOURCE], epoch))
    clamp_times(root, epoch)
    return DeviceRoot(root, boot, epoch)


def _assemble(request: DiskRequest, resolved: Resolved, plan: DiskPlan, psk: str | None, work: Path) -> DiskImage:
    device = device_root(request, resolved, plan, psk, work)
    sizes = disk_sizes(resolved, plan, device.folder)
    _check_space(work, sizes.root)
    contents = _contents(plan, resolved, device.folder)
    data = data_folder(plan, device.folder, work / "data", device.epoch)
    disk = make_disk(plan, device.folder, device.boot, work, sizes=sizes, epoch=device.epoch, data=data)
    shutil.rmtree(device.folder)
    (work / f"{plan.name}.spdx.json").write_bytes(sbom.encode(sbom.document(contents, device.epoch)))
    return _publish(plan, disk, request.output)


def data_folder(plan: DiskPlan, root: Path, folder: Path, epoch: int) -> Path:
    """What the data partition holds as built: the upper and work folders of the service's data overlay (the upper
    one with the owner and mode of the version's own folder, which the overlay shows), cortex sync's folder and
    the update agent's."""
    lower = (root / plan.data_path.lstrip("/")).stat()
    for name, mode in (("cortex/upper", lower.st_mode & 0o7777), ("cortex/work", 0o700), ("sync", 0o755),
                       ("update", 0o755)):  # fmt: skip
        path = folder / name
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
    os.chown(folder / "cortex" / "upper", lower.st_uid, lower.st_gid)
    clamp_times(folder, epoch)
    return folder


def _contents(plan: DiskPlan, resolved: Resolved, root: Path) -> sbom.Contents:
    """What the image holds, for its SBOM: dpkg's packages, the service's venv, the baked models."""
    site = sorted((root / "opt" / "cortex").glob("*/lib/python*/site-packages"))
    python = sbom.site_packages_entries(site[-1]) if site else ()
    base = resolved.path.parent
    models = tuple(
        sbom.ModelEntry(model.id, model.sha256, public_source(model.source, base))
        for model in resolved.config.models
        if model.sha256 and resolved.config.build.bake_models
    )
    return sbom.Contents(plan.name, plan.architecture, tuple(installed_packages(root)), python, models, plan.release)


def _install(bundle: Path, root: Path, epoch: int) -> None:
    """The bundle's own installer into the image's root (no start): the service exactly as on a host.
    SOURCE_DATE_EPOCH makes Python write hash-checked bytecode, valid whatever the file times."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "SOURCE_DATE_EPOCH": str(epoch)}
    done = subprocess.run(
        [str(bundle / "install.sh"), "--root", str(root), "--no-start"],
        capture_output=True, text=True, env=env, check=False, timeout=3600,
    )  # fmt: skip
    if done.returncode != 0:
        raise DiskError(f"install.sh --root failed: {done.stderr.strip()[-1500:]}")


def _update_initramfs(root: Path, epoch: int) -> None:
    """The initramfs again, with the board's modules (etc/initramfs-tools/modules), made reproducibly.
    raspi-firmware's hook would copy it to /boot/firmware, which is not mounted here (the build writes the
    boot partition itself, from /boot): told it runs under a kernel package's hook, it leaves that for later."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "SOURCE_DATE_EPOCH": str(epoch),
           "INITRAMFS_TOOLS_KERNEL_HOOK": "1"}  # fmt: skip
    done = subprocess.run(["chroot", str(root), "update-initramfs", "-u", "-k", "all"], capture_output=True,
                          text=True, env=env, check=False, timeout=1800)  # fmt: skip
    if done.returncode != 0:
        raise DiskError(f"update-initramfs in the image failed: {done.stderr.strip()[-800:]}")


def configure_device(plan: DiskPlan, root: Path, files: Mapping[str, tuple[str, int]]) -> None:
    """The device's files, its time zone and units; no SSH host keys (first boot makes each copy its own)."""
    for relative in files:
        (root / relative).unlink(missing_ok=True)
    # Made with their modes (a Wi-Fi key is never readable by all, not even for an instant).
    write_tree({relative: text(content, mode) for relative, (content, mode) in files.items()}, root)
    zone = root / "usr" / "share" / "zoneinfo" / plan.timezone
    if not zone.is_file():
        raise DiskError(f"device.timezone: no time zone `{plan.timezone}` in the image's tzdata")
    localtime = root / "etc" / "localtime"
    localtime.unlink(missing_ok=True)
    localtime.symlink_to(f"../usr/share/zoneinfo/{plan.timezone}")
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc" / "machine-id").write_text("", encoding="utf-8")  # each copy makes its own at first boot
    for mount_point in ("data", plan.sync_path.lstrip("/")):  # the data partition, cortex sync's folder on it
        (root / mount_point).mkdir(mode=0o755, exist_ok=True)
    for hook in RASPI_FIRMWARE_HOOKS:  # they would make /boot/firmware boot one kernel, not the slots (see below)
        (root / hook).unlink(missing_ok=True)
    _stamp_os_release(plan, root)
    enable, disable = enabled_units(plan)
    _systemctl(root, "enable", enable)
    if disable:
        _systemctl(root, "disable", disable)


def _stamp_os_release(plan: DiskPlan, root: Path) -> None:
    """IMAGE_ID and IMAGE_VERSION (build.version) in the os-release /etc/os-release names, as systemd's image
    tools read them: the device reports what it runs, and an update can tell its image from another."""
    os_release = root / "usr" / "lib" / "os-release"
    kept = [line for line in os_release.read_text(encoding="utf-8").splitlines() if not line.startswith("IMAGE_")]
    stamped = [f"IMAGE_ID={plan.image_id}", *([f"IMAGE_VERSION={plan.version}"] if plan.version else [])]
    os_release.unlink()  # a file of its own, never one a link shares
    os_release.write_text("\n".join([*kept, *stamped]) + "\n", encoding="utf-8")


def _systemctl(root: Path, verb: str, units: list[str]) -> None:
    done = subprocess.run(
        ["systemctl", f"--root={root}", "--quiet", verb, *units],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise DiskError(f"systemctl {verb} {' '.join(units)} in the image failed: {done.stderr.strip()[-500:]}")


def _kernel_version(path: Path) -> tuple[tuple[int, ...], str]:
    return tuple(int(number) for number in re.findall(r"\d+", path.name)), path.name


def boot_files(plan: DiskPlan, root: Path) -> dict[str, BootFile]:
    """The files the boot partition takes from the root: the kernel and initrd, then the board's loader
    (systemd-boot) or firmware and device trees."""
    kernels = sorted((root / "boot").glob("vmlinuz-*"), key=_kernel_version)  # the newest last (6.12 < 7.3)
    if not kernels:
        raise DiskError(f"no kernel in the image: the board's kernel package `{plan.board.kernel}` installed none")
    release = kernels[-1].name.removeprefix("vmlinuz-")
    at = kernel_folder(plan)
    files = {
        f"{at}vmlinuz": BootFile(kernels[-1]),
        f"{at}initrd.img": BootFile(root / "boot" / f"initrd.img-{release}"),
    }
    if plan.uefi:
        loader, name = EFI_LOADERS[plan.architecture]
        files[f"EFI/BOOT/{name}"] = BootFile(root / "usr" / "lib" / "systemd" / "boot" / "efi" / loader)
    else:
        files |= _raspberry_pi_files(plan, root, release)
    missing = [str(f.source) for f in files.values() if f.source is not None and not f.source.is_file()]
    if missing:
        raise DiskError(f"boot files missing from the image's packages: {', '.join(missing)}")
    return files


def _raspberry_pi_files(plan: DiskPlan, root: Path, release: str) -> dict[str, BootFile]:
    firmware = root / str(plan.board.firmware).lstrip("/")
    if not firmware.is_dir():
        raise DiskError(f"no Raspberry Pi firmware at {plan.board.firmware} (from the board's packages)")
    files = {path.name: BootFile(path) for path in sorted(firmware.iterdir()) if path.is_file()}
    trees = root / "usr" / "lib" / f"linux-image-{release}"
    files |= {Path(tree).name: BootFile(trees / tree) for tree in plan.board.device_trees}
    if plan.board.u_boot is None:
        raise DiskError(f"hardware recipe `{plan.board.name}` names no U-Boot (disk.u_boot): its slots cannot boot")
    files["u-boot.bin"] = BootFile(root / plan.board.u_boot.lstrip("/"))
    return files


def disk_sizes(resolved: Resolved, plan: DiskPlan, root: Path) -> Sizes:
    """The root file system: its content plus room. Its slot: twice that (room for the versions after it), or half
    of what device.image_size_mb leaves."""
    needed = content_mib(root)
    root_mib = _round(needed + max(HEADROOM_MIB, needed // 4))
    if plan.size_mib is None:
        return Sizes(root_mib, 2 * root_mib, DATA_MIB)
    room = plan.size_mib - BOOT_MIB - DATA_MIB - 2 * OFFSET_MIB
    slot_mib = room // 2
    if slot_mib < needed:
        least = 2 * needed + BOOT_MIB + DATA_MIB + 2 * OFFSET_MIB
        message = f"{plan.size_mib} MiB is smaller than the image's content: it needs at least {least} MiB"
        raise ConfigError([Diagnostic(resolved.origin(("device", "image_size_mb")), "device.image_size_mb", message)])
    return Sizes(min(root_mib, slot_mib), slot_mib, DATA_MIB)


def _round(mib: int) -> int:
    return -(-mib // 64) * 64


def _check_space(folder: Path, root_mib: int) -> None:
    free = shutil.disk_usage(folder).free // MIB
    if free < SPACE_FACTOR * root_mib:
        raise DiskError(
            f"not enough free space in {folder}: the image needs about {SPACE_FACTOR * root_mib} MiB, {free} MiB free"
        )


def wifi_psk(resolved: Resolved, environ: Mapping[str, str]) -> str | None:
    """The WPA PSK for device.wifi (PBKDF2 of the passphrase, as wpa_passphrase makes it), or None."""
    wifi = resolved.config.device.wifi
    if wifi.ssid is None or wifi.passphrase is None:
        return None
    where = resolved.origin(("device", "wifi", "passphrase"))
    try:
        passphrase = wifi.passphrase.with_base(resolved.path.parent).resolve(dict(environ))
    except SecretUnavailable as exc:
        raise ConfigError([Diagnostic(where, "device.wifi.passphrase", str(exc))]) from None
    if not 8 <= len(passphrase) <= 63 or not passphrase.isascii():
        message = "a WPA passphrase is 8 to 63 ASCII characters"
        raise ConfigError([Diagnostic(where, "device.wifi.passphrase", message)])
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), wifi.ssid.encode(), 4096, 32).hex()


def _publish(plan: DiskPlan, disk: Path, output: Path) -> DiskImage:
    """Block map, compressed copy and checksums beside the image; each renamed into `output` once
    written, the image last: a name in `output` is always a whole file."""
    stem = disk.with_name(plan.name + ".img")
    disk.rename(stem)
    bmap, compressed = stem.with_name(stem.name + ".bmap"), stem.with_name(stem.name + ".zst")
    _tool(["bmaptool", "-q", "create", "-o", str(bmap), str(stem)], "bmaptool create (apt-get install bmap-tools)")
    _tool(["zstd", "-q", "-T0", "-10", "--no-progress", "-f", str(stem), "-o", str(compressed)], "zstd")
    checksums = stem.with_name(plan.name + ".sha256")
    document = stem.with_name(plan.name + ".spdx.json")
    lines = [f"{file_sha256(path)}  {path.name}\n" for path in (stem, compressed, bmap, document)]
    checksums.write_text("".join(lines), encoding="utf-8")
    for image in (stem, compressed):  # the device's Wi-Fi key and config: for the builder's eyes, not every user's
        os.chmod(image, 0o600)
    used = os.stat(stem).st_blocks * 512
    final = {path: publish(path, output / path.name) for path in (bmap, compressed, document, checksums, stem)}
    return DiskImage(final[stem], final[compressed], final[bmap], final[checksums], final[document], plan, used)


def _tool(command: list[str], what: str) -> None:
    if shutil.which(command[0]) is None:
        raise DiskError(f"{command[0]} is not installed: {what}")
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)
    if done.returncode != 0:
        raise DiskError(f"{command[0]} failed: {(done.stderr or done.stdout).strip()[-500:]}")
