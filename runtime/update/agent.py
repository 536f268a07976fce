"""One round of the update agent (`cortex update run`, from a timer, as root):

reconcile (did the last update keep?) -> in the maintenance window? -> SHA256SUMS and its signature, checked
against the trusted keys before anything else is read -> the manifest it names -> this board, a newer version,
not one that failed -> the files, downloaded with resume and checked against their sums -> the idle slot's entry
removed -> the root written into the idle slot, this device's own state carried into it -> its kernel and its
entry, with one try -> reboot. A power cut anywhere leaves the running slot's entry as it was: the device boots it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from urllib3.exceptions import HTTPError

from ..fetch.download import RemoteFile, download_file
from ..fetch.errors import ModelUnavailable
from ..fetch.http_get import HttpFailure, failure_reason, http_get
from ..fetch.netsettings import NetSettings
from ..sync.state import now
from .carry import CarryError, carry_state
from .manifest import (
    MANIFEST,
    MAX_SMALL_FILE,
    PGP_SIGNATURE,
    SSH_SIGNATURE,
    SUMS,
    Manifest,
    ManifestError,
    parse_manifest,
    parse_sums,
    version_key,
)
from .slots import Device, SlotError, other
from .source import Login, Source, SourceError, open_source
from .state import DOWNLOADING, FAILED, INSTALLING, MAX_TRIES, REBOOTING, UpdateState
from .trust import UntrustedUpdate, verify_pgp, verify_ssh

log = logging.getLogger("cortex.update")
WRITE_S = 3600
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64"}


class UpdateRefused(Exception):
    """This round installs nothing; the message says why (it goes to the journal and /health)."""


@dataclass(frozen=True)
class Settings:
    url: str  # an http(s) folder, or an OCI reference (source.py)
    trusted_keys: tuple[str, ...]
    window: str | None  # HH:MM-HH:MM, local time
    sync_state: Path | None = None  # cortex sync's state.json: present, the repository owns the Cortexfile
    login: Login | None = None  # for a registry that refuses anonymous pulls


@dataclass(frozen=True)
class Running:
    image_id: str
    version: str
    architecture: str

    @classmethod
    def read(cls, device: Device) -> Running:
        fields: dict[str, str] = {}
        try:
            lines = device.os_release.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            lines = []
        for line in lines:
            name, _, value = line.partition("=")
            fields[name] = value.strip().strip('"')
        machine = ARCHITECTURES.get(platform.machine(), platform.machine())
        return cls(fields.get("IMAGE_ID", ""), fields.get("IMAGE_VERSION", "0"), machine)


def run_round(settings: Settings, device: Device, net: NetSettings, reboot: Callable[[], None]) -> bool:
    """True when an update was installed and the device reboots into it."""
    state = UpdateState.load(device.state_folder)
    reconcile(state, device)
    state.checked_at = now()
    try:
        installed = _attempt(settings, device, net, state)
    finally:
        state.save(device.state_folder)
    if installed is None:
        return False
    log.info("update: version %s written to the idle slot; rebooting into it", installed)
    reboot()
    return True


def _attempt(settings: Settings, device: Device, net: NetSettings, state: UpdateState) -> str | None:
    """The version installed; None when there is nothing to install, or it was refused (recorded in `state`)."""
    version: str | None = None
    try:
        if device.on_trial():
            log.info("update: the running version is on trial; its boot check decides first")
            return None
        if not in_window(settings.window, time.localtime()):
            log.info("update: outside the maintenance window %s", settings.window)
            return None
        source = open_source(settings.url, net, settings.login)
        manifest = fetch_manifest(settings, device, source)
        version = manifest.version
        if _wanted(manifest, state, Running.read(device)):
            _install(manifest, settings, device, source, state)
            return version
    except (UpdateRefused, UntrustedUpdate, ManifestError, SlotError, CarryError, SourceError) as exc:
        state.fail(version, str(exc))
        log.error("update: %s", exc)
    except OSError as exc:  # a full data partition, a boot partition that cannot be written
        where = f" ({exc.filename})" if exc.filename else ""
        state.fail(version, f"the update could not be written: {exc.strerror or 'an I/O error'}{where}")
        log.error("update: %s", (state.last_error or {}).get("message"))
    except Exception as exc:  # a bug, or a server that found one: recorded, never a silent crash mid-state
        state.fail(version, f"the update round failed unexpectedly ({type(exc).__name__})")
        log.exception("update: the round failed unexpectedly")
    return None


def reconcile(state: UpdateState, device: Device) -> None:
    """An installed version whose slot is not the one booted, once the device has rebooted, did not keep: the
    boot loader returned to the other slot (its check failed, or it never came up)."""
    installed = state.installed
    if installed is None or installed.get("boot_id") == device.boot_id() or device.booted_slot() == installed["slot"]:
        return  # not rebooted yet, or on trial (the boot check decides)
    version = installed["version"]
    error = state.last_error or {}
    checked = error.get("version") == version and version in state.failed_versions  # its boot check failed it
    reason = error.get("message") if checked else "it never became ready: a power cut, or it could not boot"
    state.installed = None
    state.unkept[version] = state.unkept.get(version, 0) + 1
    final = checked or state.unkept[version] >= MAX_TRIES  # a power cut during the trial: tried again, a few times
    state.fail(version, f"version {version} was not kept ({reason}); back on the version before it", final=final)


def in_window(window: str | None, local: time.struct_time) -> bool:
    if window is None:
        return True
    start, end = (int(part[:2]) * 60 + int(part[3:]) for part in window.split("-"))
    minute = local.tm_hour * 60 + local.tm_min
    return start <= minute < end if start <= end else minute >= start or minute < end


def fetch_manifest(settings: Settings, device: Device, source: Source) -> Manifest:
    """The manifest, once SHA256SUMS is verified against the trusted keys and names the manifest's hash."""
    incoming = device.state_folder / "incoming"
    incoming.mkdir(parents=True, exist_ok=True, mode=0o700)
    sums_path = incoming / SUMS
    sums_path.write_bytes(_small(source, SUMS))
    _verify(sums_path, settings, source, incoming)
    sums = parse_sums(sums_path.read_bytes())
    if MANIFEST not in sums:
        raise UpdateRefused(f"{SUMS} does not list {MANIFEST}")
    raw = _small(source, MANIFEST)
    if hashlib.sha256(raw).hexdigest() != sums[MANIFEST]:
        raise UpdateRefused(f"{MANIFEST} does not match its sum in the signed {SUMS}")
    manifest = parse_manifest(raw)
    for payload in manifest.payloads:
        if sums.get(payload.file) != payload.sha256:
            raise UpdateRefused(f"{payload.file} is not listed with the manifest's sum in the signed {SUMS}")
    return manifest


def _verify(sums: Path, settings: Settings, source: Source, incoming: Path) -> None:
    """SHA256SUMS is trusted when one of its signatures (SSH, OpenPGP) verifies with the trusted keys."""
    refusal: UntrustedUpdate | None = None
    for name, verify in ((SSH_SIGNATURE, verify_ssh), (PGP_SIGNATURE, verify_pgp)):
        try:
            data = _small(source, name)
        except (UpdateRefused, SourceError):
            continue
        path = incoming / name
        path.write_bytes(data)
        try:
            verify(sums, path, settings.trusted_keys, incoming / "keys")
            return
        except UntrustedUpdate as exc:
            refusal = exc
    raise refusal or UntrustedUpdate(f"the update has no signature ({SSH_SIGNATURE} or {PGP_SIGNATURE})")


def _small(source: Source, name: str) -> bytes:
    try:
        with http_get(source.url(name), source.net) as response:
            data = response.read(MAX_SMALL_FILE + 1)
    except (HttpFailure, HTTPError, OSError) as exc:
        reason = str(exc) if isinstance(exc, HttpFailure) else failure_reason(exc)
        raise UpdateRefused(f"fetching {name} failed: {reason}") from None
    if len(data) > MAX_SMALL_FILE:
        raise UpdateRefused(f"{name} is larger than {MAX_SMALL_FILE} bytes")
    return bytes(data)


def _wanted(manifest: Manifest, state: UpdateState, running: Running) -> bool:
    if (manifest.image_id, manifest.architecture) != (running.image_id, running.architecture):
        raise UpdateRefused(
            f"the update is for {manifest.image_id} ({manifest.architecture}); this device is {running.image_id} "
            f"({running.architecture})"
        )
    newer, current = version_key(manifest.version), version_key(running.version)
    if newer < current:
        raise UpdateRefused(f"version {manifest.version} is older than the running {running.version}: refused")
    if newer == current:
        state.succeed()
        log.info("update: running %s, the newest", running.version)
        return False
    if manifest.version in state.failed_versions:  # /health keeps saying so until a newer version is published
        state.state = FAILED
        log.info("update: version %s failed before; waiting for a newer one", manifest.version)
        return False
    return True


def _install(manifest: Manifest, settings: Settings, device: Device, source: Source, state: UpdateState) -> None:
    booted = device.booted_slot()
    if booted is None:
        raise UpdateRefused("the kernel command line names no slot: this device was not flashed with A/B slots")
    target = other(booted)
    partition = device.partition(target)
    if partition.partuuid == device.booted_partuuid():
        raise UpdateRefused(f"slot {target}'s partition is the running root: refused")
    if manifest.root_bytes > partition.size:
        raise UpdateRefused(
            f"version {manifest.version}'s root needs {manifest.root_bytes >> 20} MiB; slot {target} holds "
            f"{partition.size >> 20} MiB (flash an image with larger slots)"
        )
    state.state = DOWNLOADING
    state.save(device.state_folder)
    files = _download(manifest, device, source)
    state.state = INSTALLING
    state.save(device.state_folder)
    device.remove_entry(target)  # from here until its new entry, the boot loader never picks this slot
    _write_root(files[0], partition.device, manifest.root_bytes)
    carry_state(device.root, partition.device, settings.sync_state)
    device.install_boot_files(target, files[1], files[2])
    device.add_entry(target, manifest.version, partition.partuuid, manifest.boot_options)
    shutil.rmtree(files[0].parent)  # the downloads: the data partition is for the device's data
    state.installed = {"version": manifest.version, "slot": target, "at": now(), "boot_id": device.boot_id()}
    state.state = REBOOTING


def _download(manifest: Manifest, device: Device, source: Source) -> list[Path]:
    folder = device.state_folder / "downloads"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    keep = {payload.sha256 for payload in manifest.payloads}
    for stale in folder.iterdir():  # an earlier version's files (whole or partial): the data partition is the device's
        if stale.name.lstrip(".").split(".")[0] not in keep:
            shutil.rmtree(stale) if stale.is_dir() and not stale.is_symlink() else stale.unlink()
    paths = []
    for payload in manifest.payloads:
        wanted = RemoteFile(payload.file, source.url(payload.file), payload.sha256, "update file", payload.size)
        try:
            paths.append(download_file(wanted, folder, ".part", source.net))
        except ModelUnavailable as exc:
            raise UpdateRefused(str(exc)) from None
    return paths


def _write_root(compressed: Path, slot: Path, size: int) -> None:
    """The root file system into the slot, decompressed on the way; exactly `size` bytes or an error."""
    # O_EXCL: a block device someone mounted is refused (EBUSY), never written under its file system.
    with os.fdopen(os.open(slot, os.O_WRONLY | os.O_EXCL), "wb") as out:
        try:
            done = subprocess.run(["zstd", "-dc", "--no-progress", str(compressed)], stdout=out, stderr=subprocess.PIPE,
                                  check=False, timeout=WRITE_S)  # fmt: skip
        except FileNotFoundError:
            raise UpdateRefused("zstd is not installed: the update cannot be unpacked") from None
        except subprocess.TimeoutExpired:
            raise UpdateRefused(f"writing the root took over {WRITE_S} s") from None
        written = os.lseek(out.fileno(), 0, os.SEEK_CUR)  # where zstd's writes ended
        out.flush()
        os.fsync(out.fileno())
    if done.returncode != 0:
        raise UpdateRefused("the root file system could not be unpacked into the slot (zstd failed)")
    if written != size:
        raise UpdateRefused(f"the root file system unpacked to {written} bytes, the manifest says {size}")
