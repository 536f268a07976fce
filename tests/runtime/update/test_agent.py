"""The update agent and the boot check on real parts short of a booted device: updates signed by the builder's own
signing code (ssh-keygen), served over http, checked, downloaded and unpacked (zstd) into a slot that is a file,
the device's state written into it by debugfs; the boot partition a folder. Only the partition lookup (lsblk on
the boot disk) and the reboot are the test's."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.images.targets.update.sign import SigningError, SigningKey
from menlo_cortex.runtime.fetch.netsettings import NetSettings, tls_context
from menlo_cortex.runtime.update import bootfiles, uboot
from menlo_cortex.runtime.update.agent import Settings, in_window, reconcile, run_round
from menlo_cortex.runtime.update.check import Server, probes, run_check
from menlo_cortex.runtime.update.manifest import MANIFEST, SUMS, Manifest, ManifestError, Payload, parse_manifest
from menlo_cortex.runtime.update.slots import Device, Partition, entry_text
from menlo_cortex.runtime.update.state import FAILED, REBOOTING, UpdateState

from tests.conftest import find_free_port

pytestmark = pytest.mark.timeout(300)
RUNNING, NEWER = "1.0.0", "1.1.0"
IMAGE = "cortex-x86-64-uefi"
PARTUUIDS = {"a": "11111111-1111-4111-8111-111111111111", "b": "22222222-2222-4222-8222-222222222222"}
OPTIONS = "rw rootwait console=ttyS0,115200"
SLOT_MIB = 64


@dataclass(frozen=True)
class FileDevice(Device):
    """A device whose slots are files beside its boot partition folder."""

    slots: dict[str, Path] = field(default_factory=dict)

    def partition(self, slot: str) -> Partition:
        return Partition(self.slots[slot], PARTUUIDS[slot], self.slots[slot].stat().st_size)


def run(command: list[str], **kwargs: Any) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=120, **kwargs)


def ssh_key(path: Path) -> Path:
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet", "-f", str(path)])
    return path


def device(tmp_path: Path, booted: str = "a") -> FileDevice:
    root = tmp_path / "running"
    for name, text in (("etc/machine-id", "d" * 32 + "\n"), ("etc/cortex/api-keys", "cortex-key\n"),
                       ("etc/ssh/ssh_host_ed25519_key", "host key\n")):  # fmt: skip
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "etc/cortex/api-keys").chmod(0o640)
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/os-release").write_text(f"ID=debian\nIMAGE_ID={IMAGE}\nIMAGE_VERSION={RUNNING}\n")
    slots = {}
    for slot in ("a", "b"):
        slots[slot] = tmp_path / f"slot-{slot}"
        slots[slot].write_bytes(b"")
        slots[slot].write_bytes(b"\0" * (SLOT_MIB << 20))
    (tmp_path / "esp/loader/entries").mkdir(parents=True)
    entry = entry_text(booted, RUNNING, PARTUUIDS[booted], OPTIONS)
    (tmp_path / f"esp/loader/entries/cortex-{booted}.conf").write_text(entry)
    cmdline = tmp_path / "cmdline"
    cmdline.write_text(f"root=PARTUUID={PARTUUIDS[booted]} {OPTIONS} cortex.slot={booted}\n")
    (tmp_path / "boot_id").write_text("first-boot\n")
    return FileDevice(esp=tmp_path / "esp", data=tmp_path / "data", cmdline=cmdline, root=root,
                      os_release=root / "usr/lib/os-release", boot_id_file=tmp_path / "boot_id",
                      slots=slots)  # fmt: skip


def make_update(folder: Path, key: Path, version: str = NEWER, image_id: str = IMAGE, root_mib: int = 32) -> Path:
    """An update folder as `cortex build --format update` lays it out, signed by its signing code."""
    content = folder.parent / f"content-{version}"
    (content / "etc/cortex").mkdir(parents=True)
    (content / "etc/os-release").write_text(f"IMAGE_VERSION={version}\n")
    (content / "etc/machine-id").write_text("")
    (content / "etc/cortex/Cortexfile.yaml").write_text("version: 1\n")
    folder.mkdir()
    root = folder.parent / f"root-{version}.ext4"
    run(["mke2fs", "-q", "-t", "ext4", "-d", str(content), "-F", str(root), f"{root_mib}M"])
    stem = f"{image_id}_{version}"
    run(["zstd", "-q", "-f", str(root), "-o", str(folder / f"{stem}.root.ext4.zst")])
    (folder / f"{stem}.vmlinuz").write_bytes(b"kernel " + version.encode())
    (folder / f"{stem}.initrd.img").write_bytes(b"initrd " + version.encode())

    def payload(name: str) -> Payload:
        data = (folder / name).read_bytes()
        return Payload(name, hashlib.sha256(data).hexdigest(), len(data))

    manifest = Manifest(image_id, "amd64", version, payload(f"{stem}.root.ext4.zst"), root.stat().st_size,
                        payload(f"{stem}.vmlinuz"), payload(f"{stem}.initrd.img"), OPTIONS)  # fmt: skip
    (folder / MANIFEST).write_text(manifest.encode())
    names = sorted(path.name for path in folder.iterdir())
    sums = "".join(f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    (folder / SUMS).write_text(sums)
    SigningKey.load(str(key), {}).sign(folder / SUMS)
    return folder


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    folder = tmp_path / "served"
    folder.mkdir()
    port = find_free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{port}/"
    server.shutdown()
    server.server_close()


def net() -> NetSettings:
    return NetSettings("cortex-test", tls_context(True, True), None, ("https", "huggingface.co", 443), None)


def publish(update: Path, served: Path) -> None:
    for path in update.iterdir():
        (served / path.name).write_bytes(path.read_bytes())


def debugfs_cat(image: Path, path: str) -> str:
    command = ["debugfs", "-R", f"cat {path}", str(image)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout


def test_a_signed_newer_update_is_written_to_the_idle_slot_with_the_devices_state(
    tmp_path: Path, served: tuple[Path, str]
) -> None:
    key = ssh_key(tmp_path / "fleet")
    publish(make_update(tmp_path / "v2", key), served[0])
    dev = device(tmp_path)
    reboots: list[int] = []
    settings = Settings(served[1], (key.with_suffix(".pub").read_text().strip(),), None)
    assert run_round(settings, dev, net(), lambda: reboots.append(1))
    assert reboots == [1]
    slot = dev.slots["b"]
    assert debugfs_cat(slot, "/etc/os-release") == f"IMAGE_VERSION={NEWER}\n"
    assert debugfs_cat(slot, "/etc/machine-id") == "d" * 32 + "\n"  # the device's identity, carried
    assert debugfs_cat(slot, "/etc/cortex/api-keys") == "cortex-key\n"
    assert debugfs_cat(slot, "/etc/ssh/ssh_host_ed25519_key") == "host key\n"
    stat = ["debugfs", "-R", "stat /etc/cortex/api-keys", str(slot)]
    mode = subprocess.run(stat, capture_output=True, text=True, timeout=60, check=False)
    assert "Mode:  0640" in mode.stdout
    assert debugfs_cat(slot, "/etc/cortex/Cortexfile.yaml") == "version: 1\n"  # no sync state: the version's own
    entry = (dev.esp / "loader/entries/cortex-b+1.conf").read_text()
    assert entry == entry_text("b", NEWER, PARTUUIDS["b"], OPTIONS)
    assert (dev.esp / "cortex/b/vmlinuz").read_bytes() == b"kernel " + NEWER.encode()
    assert (dev.esp / "loader/entries/cortex-a.conf").exists()  # the running slot's entry untouched
    state = UpdateState.load(dev.state_folder)
    assert (state.state, state.installed and state.installed["version"]) == (REBOOTING, NEWER)
    assert not (dev.state_folder / "downloads").exists()  # the data partition is the device's


def refused(tmp_path: Path, served: tuple[Path, str], update: Path, keys: tuple[str, ...]) -> tuple[FileDevice, str]:
    publish(update, served[0])
    dev = device(tmp_path)
    before = dev.slots["b"].read_bytes()
    reboots: list[int] = []
    assert not run_round(Settings(served[1], keys, None), dev, net(), lambda: reboots.append(1))
    assert reboots == []
    assert dev.slots["b"].read_bytes() == before  # nothing written
    assert [p.name for p in (dev.esp / "loader/entries").iterdir()] == ["cortex-a.conf"]
    state = UpdateState.load(dev.state_folder)
    assert state.state == FAILED
    assert state.last_error is not None
    return dev, str(state.last_error["message"])


def test_an_update_signed_by_another_key_is_refused_before_anything_is_read(
    tmp_path: Path, served: tuple[Path, str]
) -> None:
    trusted, stranger = ssh_key(tmp_path / "fleet"), ssh_key(tmp_path / "stranger")
    update = make_update(tmp_path / "v2", stranger)
    _, message = refused(tmp_path, served, update, (trusted.with_suffix(".pub").read_text().strip(),))
    assert message == "the update is not signed by a trusted key"


def test_a_corrupted_or_truncated_download_is_refused(tmp_path: Path, served: tuple[Path, str]) -> None:
    key = ssh_key(tmp_path / "fleet")
    update = make_update(tmp_path / "v2", key)
    root = next(update.glob("*.root.ext4.zst"))
    whole = root.read_bytes()
    root.write_bytes(whole[:1000])  # cut short: its sum no longer matches
    keys = (key.with_suffix(".pub").read_text().strip(),)
    dev, message = refused(tmp_path, served, update, keys)
    assert f"update file `{root.name}`" in message
    assert f"the server's file is 1000 bytes, {len(whole)} were expected" in message
    assert UpdateState.load(dev.state_folder).failed_versions == []  # not the version's fault: tried again
    (served[0] / root.name).write_bytes(bytes(len(whole)))  # as long, other bytes
    assert not run_round(Settings(served[1], keys, None), dev, net(), lambda: pytest.fail("rebooted"))
    error = UpdateState.load(dev.state_folder).last_error or {}
    assert "has sha256" in str(error.get("message"))
    (served[0] / root.name).write_bytes(whole)
    assert run_round(Settings(served[1], keys, None), dev, net(), lambda: None)


@pytest.mark.parametrize(
    ("version", "image_id", "root_mib", "says"),
    [
        ("0.9.0", IMAGE, 32, f"version 0.9.0 is older than the running {RUNNING}: refused"),
        (
            NEWER,
            "cortex-raspberry-pi-4",
            32,
            f"the update is for cortex-raspberry-pi-4 (amd64); this device is {IMAGE}",
        ),
        (NEWER, IMAGE, 2 * SLOT_MIB, f"root needs {2 * SLOT_MIB} MiB; slot b holds {SLOT_MIB} MiB"),
    ],
)
def test_an_older_foreign_or_oversized_update_is_refused(  # noqa: PLR0917 (pytest passes the parameters)
    tmp_path: Path, served: tuple[Path, str], version: str, image_id: str, root_mib: int, says: str
) -> None:
    key = ssh_key(tmp_path / "fleet")
    update = make_update(tmp_path / "v", key, version, image_id, root_mib)
    _, message = refused(tmp_path, served, update, (key.with_suffix(".pub").read_text().strip(),))
    assert says in message


def test_a_version_that_failed_is_not_tried_again_and_an_unsigned_folder_is_refused(
    tmp_path: Path, served: tuple[Path, str]
) -> None:
    key = ssh_key(tmp_path / "fleet")
    publish(make_update(tmp_path / "v2", key), served[0])
    dev = device(tmp_path)
    state = UpdateState()
    state.fail(NEWER, "cortex.service failed to start", final=True)
    state.save(dev.state_folder)
    settings = Settings(served[1], (key.with_suffix(".pub").read_text().strip(),), None)
    assert not run_round(settings, dev, net(), lambda: pytest.fail("rebooted"))
    (served[0] / "SHA256SUMS.sig").unlink()
    assert not run_round(settings, dev, net(), lambda: pytest.fail("rebooted"))
    error = UpdateState.load(dev.state_folder).last_error or {}
    assert str(error.get("message")).startswith("the update has no signature")


class Answers(BaseHTTPRequestHandler):
    """A server that is ready and answers every request (or, with status 500, fails every model)."""

    status = 200

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(self.status)

    def _answer(self, status: int = 200) -> None:
        body = json.dumps({"ok": True}).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def on_trial(tmp_path: Path) -> FileDevice:
    """Booted into slot b, whose entry still has its one try: firmware that would not let systemd-boot count it
    down (the check marks it itself)."""
    dev = device(tmp_path, booted="b")
    entries = dev.esp / "loader/entries"
    (entries / "cortex-b.conf").rename(entries / "cortex-b+1.conf")
    (entries / "cortex-a.conf").write_text(entry_text("a", RUNNING, PARTUUIDS["a"], OPTIONS))
    state = UpdateState(state=REBOOTING, installed={"version": RUNNING, "slot": "b", "at": "", "boot_id": "earlier"})
    state.save(dev.state_folder)
    return dev


@pytest.mark.parametrize("status", [200, 500])
def test_the_boot_check_keeps_a_version_that_answers_and_reports_one_that_does_not(tmp_path: Path, status: int) -> None:
    dev = on_trial(tmp_path)
    handler = type("Handler", (Answers,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    checks = probes([("gemma", "chat"), ("embed", "embeddings")])
    kept = run_check(dev, Server(url, "key"), checks, 1, lambda: False, poll_s=0.1)
    server.shutdown()
    server.server_close()
    state = UpdateState.load(dev.state_folder)
    names = sorted(p.name for p in (dev.esp / "loader/entries").iterdir())
    if status == 200:
        assert kept
        assert names == ["cortex-a.conf", "cortex-b.conf"]
        assert (state.state, state.installed) == ("current", None)
    else:
        assert not kept
        assert names == ["cortex-a.conf", "cortex-b+0-1.conf"]
        assert state.last_error is not None
        assert state.last_error["message"] == "model `gemma` did not answer on /v1/chat/completions (HTTP 500)"
        assert RUNNING in state.failed_versions


def test_a_service_that_fails_to_start_ends_the_check_at_once(tmp_path: Path) -> None:
    dev = on_trial(tmp_path)
    assert not run_check(dev, Server(f"http://127.0.0.1:{find_free_port()}", None), [], 600, lambda: True)
    assert (UpdateState.load(dev.state_folder).last_error or {})["message"] == "cortex.service failed to start"


def test_back_on_the_old_slot_the_agent_reports_the_version_that_was_not_kept(tmp_path: Path) -> None:
    dev = device(tmp_path, booted="a")
    state = UpdateState(state=REBOOTING, installed={"version": NEWER, "slot": "b", "at": "", "boot_id": "first-boot"})
    reconcile(state, dev)
    assert state.installed is not None  # the same boot: not rebooted yet
    (tmp_path / "boot_id").write_text("second-boot\n")
    state.fail(NEWER, "cortex.service failed to start", final=True)  # what the boot check on slot b recorded
    state.state = REBOOTING
    reconcile(state, dev)
    assert state.installed is None
    assert state.state == FAILED
    assert state.last_error is not None
    assert state.last_error["message"] == (
        f"version {NEWER} was not kept (cortex.service failed to start); back on the version before it"
    )


def test_the_maintenance_window_and_a_key_that_is_no_key() -> None:
    import time

    at = time.struct_time((2026, 12, 5, 3, 30, 0, 5, 339, 0))
    assert in_window("02:00-05:00", at)
    assert not in_window("04:00-05:00", at)
    assert in_window("22:00-04:00", at)
    assert in_window(None, at)
    with pytest.raises(SigningError, match="neither an OpenSSH private key nor an armored OpenPGP"):
        SigningKey.load("${env:KEY}", {"KEY": "ssh-ed25519 AAAA public half"})


def test_a_version_that_never_came_up_is_tried_again_a_few_times(tmp_path: Path) -> None:
    """A power cut during its trial, or a kernel that cannot boot: not the check's verdict, so not final at once."""
    dev = device(tmp_path, booted="a")
    state = UpdateState()
    for trial in range(1, 4):
        state.installed = {"version": NEWER, "slot": "b", "at": "", "boot_id": "an earlier boot"}
        reconcile(state, dev)
        assert state.last_error is not None
        assert "it never became ready" in str(state.last_error["message"])
        assert (NEWER in state.failed_versions) == (trial == 3)


def pi_device(tmp_path: Path, booted: str = "a") -> FileDevice:
    """A Raspberry Pi: its boot partition (U-Boot's boot.scr and the slot files) at `firmware`, no EFI partition."""
    dev = device(tmp_path, booted)
    shutil.rmtree(dev.esp)
    firmware = tmp_path / "firmware"
    (firmware / "cortex" / booted).mkdir(parents=True)
    (firmware / "boot.scr").write_bytes(b"script")
    (firmware / "cortex/slot.txt").write_text(uboot.kept_text(booted))
    entry = uboot.entry_text(booted, RUNNING, PARTUUIDS[booted], OPTIONS)
    (firmware / "cortex" / booted / "boot.txt").write_text(entry)
    return dataclasses.replace(dev, firmware=firmware)


def u_boot_takes_the_try(dev: FileDevice) -> FileDevice:
    """What boot.scr does at the next boot: it removes try.txt and boots the slot it named."""
    slot = (dev.firmware / "cortex/try.txt").read_text().strip().removeprefix("cortex_try=")
    (dev.firmware / "cortex/try.txt").unlink()
    dev.cmdline.write_text(f"root=PARTUUID={PARTUUIDS[slot]} {OPTIONS} cortex.slot={slot}\n")
    (dev.boot_id_file).write_text("second-boot\n")
    return dev


@pytest.mark.parametrize("answers", [True, False])
def test_a_raspberry_pi_tries_the_new_slot_once_through_u_boots_files(
    tmp_path: Path, served: tuple[Path, str], answers: bool
) -> None:
    key = ssh_key(tmp_path / "fleet")
    publish(make_update(tmp_path / "v2", key), served[0])
    dev = pi_device(tmp_path)
    assert isinstance(dev.loader, uboot.UBootOnce)
    settings = Settings(served[1], (key.with_suffix(".pub").read_text().strip(),), None)
    assert run_round(settings, dev, net(), lambda: None)
    firmware = dev.firmware
    assert (firmware / "cortex/try.txt").read_text() == "cortex_try=b\n"
    assert (firmware / "cortex/b/boot.txt").read_text() == uboot.entry_text("b", NEWER, PARTUUIDS["b"], OPTIONS)
    assert (firmware / "cortex/b/vmlinuz").read_bytes() == b"kernel " + NEWER.encode()
    assert (firmware / "cortex/slot.txt").read_text() == "cortex_slot=a\n"  # kept: a, until b proves itself
    assert dev.entries()["b"].tries_left == 1
    dev = u_boot_takes_the_try(dev)
    assert dev.on_trial()
    assert dev.entries()["b"].version == NEWER
    handler = type("Handler", (Answers,), {"status": 200 if answers else 500})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    kept = run_check(dev, Server(url, "key"), probes([("gemma", "chat")]), 1, lambda: False, poll_s=0.1)
    server.shutdown()
    server.server_close()
    assert kept == answers
    assert (firmware / "cortex/slot.txt").read_text() == f"cortex_slot={'b' if answers else 'a'}\n"
    assert not (firmware / "cortex/try.txt").exists()
    assert not dev.on_trial() if answers else dev.on_trial()
    if not answers:  # the check's unit reboots: U-Boot boots the kept slot, and the agent reports why
        dev.cmdline.write_text(f"root=PARTUUID={PARTUUIDS['a']} {OPTIONS} cortex.slot=a\n")
        (dev.boot_id_file).write_text("third-boot\n")
        state = UpdateState.load(dev.state_folder)
        reconcile(state, dev)
        assert state.state == FAILED
        assert NEWER in state.failed_versions
        assert "(HTTP 500)" in str((state.last_error or {}).get("message"))
        assert not dev.on_trial()


def test_the_slot_about_to_be_written_loses_its_try_and_its_entry(tmp_path: Path) -> None:
    dev = pi_device(tmp_path)
    dev.add_entry("b", NEWER, PARTUUIDS["b"], OPTIONS)
    assert dev.loader.armed() == "b"  # type: ignore[union-attr]
    dev.remove_entry("b")
    assert not (dev.firmware / "cortex/try.txt").exists()
    assert not (dev.firmware / "cortex/b/boot.txt").exists()
    assert set(dev.entries()) == {"a"}


def test_a_try_is_armed_only_after_its_slot_is_written_and_withdrawn_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power cut between two writes must never leave try.txt naming a slot whose boot.txt is not whole."""
    dev = pi_device(tmp_path)
    written: list[str] = []
    original, unlink = bootfiles.write_fat_text, Path.unlink

    def write(path: Path, text: str) -> None:
        written.append(path.name)
        original(path, text)

    def remove(path: Path, missing_ok: bool = False) -> None:
        removed.append(path.name)
        unlink(path, missing_ok)

    monkeypatch.setattr(uboot, "write_fat_text", write)
    dev.add_entry("b", NEWER, PARTUUIDS["b"], OPTIONS)
    assert written == ["boot.txt", "try.txt"]
    (dev.firmware / "cortex/b/vmlinuz").write_bytes(b"kernel")
    removed: list[str] = []
    monkeypatch.setattr(Path, "unlink", remove)
    dev.remove_entry("b")
    assert removed[:3] == ["try.txt", "boot.txt", "vmlinuz"]


@pytest.mark.parametrize("kept", ["cortex_slot=B\n", "cortex_slot=c\n", " cortex_slot=b\n", "garbage", ""])
def test_slot_txt_is_read_as_boot_scr_reads_it(tmp_path: Path, kept: str) -> None:
    """Anything but `cortex_slot=b` is slot a to the script: so it is to the device, or a kept slot looks on trial."""
    dev = pi_device(tmp_path, booted="a")
    (dev.firmware / "cortex/slot.txt").write_text(kept)
    assert not dev.on_trial()


@pytest.mark.parametrize("options", ["rw root=/dev/sda2", "rw cortex.slot=a"])
def test_a_manifest_may_not_set_the_root_or_the_slot(tmp_path: Path, options: str) -> None:
    payload = Payload("f", "0" * 64, 1)
    manifest = Manifest(IMAGE, "amd64", NEWER, payload, 1, dataclasses.replace(payload, file="k"),
                        dataclasses.replace(payload, file="i"), options)  # fmt: skip
    with pytest.raises(ManifestError, match="names the root or the slot"):
        parse_manifest(manifest.encode().encode())
