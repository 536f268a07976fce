"""The device image on real parts: `cortex build --format disk` -> the raw image (copied onto a larger
disk, as flashing a bigger card does) -> UEFI boot under qemu (OVMF, software emulation) -> the API key
first boot made, read from the serial console -> a chat completion with the openai client through a
forwarded port. Then over SSH (the image's own, key login): the hardened service, the grown root, the
key file's owner and mode, `systemctl reload`, an upgrade to the next bundle and an upgrade that cannot
start, which install.sh rolls back; cortex-sync.service following a repository served from the host (a signed
commit applied and served, an unsigned one refused); then signed A/B updates served from the host (`check_updates`):
through them the device keeps its key (shown once, never again), identity, data and grown data partition."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from menlo_cortex.images.targets.systemd.build import Bundle, build
from menlo_cortex.images.targets.systemd.request import SystemdRequest

from tests.conftest import find_free_port
from tests.git_remote import GitRemote

from ..systemd.test_security import MAX_EXPOSURE
from .conftest import load_disk
from .fixtures import GUEST_PORT, VERSION, Image, Ssh, disk_copy
from .qemu import Vm, boot
from .updates import BROKEN_MODELS, SECOND, THIRD, UPDATE_S, build_update, serving, tampered, wait_for_health

# What no fixture shows: the test boots a VM. Under emulation it takes 12-18 minutes; a hang fails after an hour.
pytestmark = [pytest.mark.slow, pytest.mark.vm, pytest.mark.timeout(3600)]
FIRST_ANSWER_S = 1200  # software emulation boots and loads slowly
CHAT_S = 600  # a few tokens take minutes under emulation on a busy 2-core machine
GROWN_BY_MIB = 2048
SYNC_S = 300  # a round every 10 s, then a reload under emulation
SYNCED = "server:\n  limits:\n    max_tokens: 77\n"  # a live setting: applied without reloading the model
NO_BAKE = "  bake_models: false\n"  # added to the image Cortexfile's build section
BROKEN = NO_BAKE + "  systemd:\n    start_timeout_s: 60\n"
MISSING_MODEL = BROKEN_MODELS
UNTRUSTED = "the update is not signed by a trusted key"
FAILED = "failed"


def chat(port: int, key: str) -> str:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, timeout=CHAT_S, max_retries=0)
    reply = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Say hello."}], max_tokens=4
    )
    return reply.choices[0].message.content or ""


def first_chat(vm: Vm, key: str) -> str:
    deadline = time.monotonic() + FIRST_ANSWER_S
    while True:
        assert vm.exited() is None, f"qemu exited {vm.exited()}: {vm.console_tail()}"
        try:
            return chat(vm.ports[GUEST_PORT], key)
        except (openai.APIConnectionError, openai.APIStatusError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"no chat completion in {FIRST_ANSWER_S}s ({exc}): {vm.console_tail()}") from exc
        time.sleep(3)  # booting, or loading the model: poll again, up to the deadline


def upgrade_bundle(folder: Path, image: Image, store: Path, extra: str, models: str | None = None) -> Bundle:
    """A later bundle for the device: the image's Cortexfile with a smaller context (or other `models`)
    and `extra` in its build section, started with the disk defaults, as a device's next release would be."""
    text = image.cortexfile.read_text().replace("context_size: 512", "context_size: 256")
    text = text.replace("\nbuild:\n", "\nbuild:\n" + extra, 1)
    if models is not None:
        head, tail = text.split("models:\n", 1)
        text = head + models + tail[tail.index("target:") :]
    folder.mkdir(parents=True)
    cortexfile = folder / "Cortexfile.yaml"
    cortexfile.write_text(text)
    return build(SystemdRequest(load_disk(cortexfile), folder / "out", store, defaults="disk"))


def test_device_boots_serves_upgrades_and_keeps_its_key(
    device_image: Image, second_update: Path, tmp_path: Path, test_data_dir: Path
) -> None:
    disk = disk_copy(device_image.img, tmp_path / "disk.img", GROWN_BY_MIB)
    second = upgrade_bundle(tmp_path / "v2", device_image, test_data_dir, NO_BAKE)
    broken = upgrade_bundle(tmp_path / "v3", device_image, test_data_dir, BROKEN, MISSING_MODEL)
    ports = {GUEST_PORT: find_free_port(), 22: find_free_port()}
    started = time.monotonic()
    with boot(disk, "amd64", ports) as vm:
        vm.wait_for_key_notice(FIRST_ANSWER_S)
        ssh = Ssh(device_image.ssh_key, ports[22])
        key = ssh.api_key(FIRST_ANSWER_S)
        assert first_chat(vm, key)
        print(f"first chat completion {time.monotonic() - started:.0f}s after power-on")
        check_service(ssh)
        check_image_version(ports[GUEST_PORT], key)
        check_grown_data_and_key_file(ssh)

        ssh.ok("systemctl reload cortex", 60)
        assert ssh.ok("systemctl is-active cortex", 60) == "active"
        ssh.ok("mkdir -p /root/bundles")
        for bundle in (second, broken):
            ssh.copy_in(bundle.folder, "/root/bundles/")
        upgrade = ssh.run(f"/root/bundles/{second.folder.name}/install.sh", 1800)
        assert upgrade.returncode == 0, upgrade.stderr
        assert ssh.ok("readlink /opt/cortex/current") == second.plan.version
        assert chat(ports[GUEST_PORT], key)
        failed = ssh.run(f"/root/bundles/{broken.folder.name}/install.sh", 1800)
        assert failed.returncode == 1, failed.stderr
        assert f"rolling back to {second.plan.version}" in failed.stderr
        assert ssh.ok("readlink /opt/cortex/current") == second.plan.version
        assert chat(ports[GUEST_PORT], key)
        # After the upgrades: from here on the repository owns the Cortexfile (install.sh keeps it as edited).
        check_sync(ssh, device_image, ports[GUEST_PORT], key, tmp_path / "fleet")

        check_updates(ssh, vm, device_image, key, second_update, folder=tmp_path / "updates", store=test_data_dir)


def check_updates(ssh: Ssh, vm: Vm, image: Image, key: str, second: Path, *, folder: Path, store: Path) -> None:
    """Signed A/B updates: one signed by a stranger refused without a reboot; v2 installed into slot b, booted, kept
    once it answers, with the device's key, identity and data; v3, whose service cannot start, tried once, then the
    device back on v2 by itself, reporting v3's failure."""
    assert image.update_port is not None
    port = vm.ports[GUEST_PORT]
    broken = build_update(image, folder / "v3", store, THIRD, BROKEN_MODELS)
    # The repository would own the Cortexfile (carried into each new slot): stop following it, so that each version
    # runs its own Cortexfile (v3's cannot start).
    ssh.ok("systemctl disable --now cortex-sync && rm -f /var/lib/cortex-sync/state.json", 120)
    ssh.ok("echo kept > /var/lib/cortex/marker")  # above the version's own folder: on the data partition
    identity = ssh.ok("sha256sum /etc/cortex/api-keys /etc/machine-id /etc/ssh/ssh_host_ed25519_key")
    assert ssh.ok("systemctl show -P LastTriggerUSecMonotonic cortex-update.timer") not in ("", "0")  # its own rounds
    with serving(tampered(second, folder / "tampered"), image.update_port):
        start_round(ssh)
        refused = wait_for_health(port, key, lambda h: _error(h).get("message") == UNTRUSTED, 600)
    assert refused["system"]["slot"] == "a"  # refused before anything was written: no reboot
    started = time.monotonic()
    with serving(second, image.update_port):
        start_round(ssh)
        updated = wait_for_health(port, key, lambda h: _kept(h, SECOND), UPDATE_S)
    print(f"v{SECOND}: downloaded, written, booted and kept in {time.monotonic() - started:.0f}s")
    assert updated["system"]["slot"] == "b"
    assert ssh.ok("sha256sum /etc/cortex/api-keys /etc/machine-id /etc/ssh/ssh_host_ed25519_key") == identity
    assert ssh.ok("cat /var/lib/cortex/marker") == "kept"
    assert chat(port, key)
    assert vm.key_notices() == 1  # made once, never again
    assert vm.api_keys_shown() == []  # never on the serial console (a cloud provider may keep its log)
    check_grown_data_and_key_file(ssh)
    with serving(broken, image.update_port):
        start_round(ssh)
        back = wait_for_health(
            port, key, lambda h: _error(h).get("version") == THIRD and _kept(h, SECOND, FAILED), UPDATE_S
        )
    assert back["system"]["slot"] == "b"
    assert "cortex.service failed to start" in back["update"]["last_error"]["message"]
    assert chat(port, key)


def start_round(ssh: Ssh) -> None:
    """A round of the update agent now, as its timer starts one (a round already running is joined, not doubled)."""
    ssh.ok("systemctl start --no-block cortex-update.service", 60)


def _error(health: dict[str, Any]) -> dict[str, Any]:
    return (health.get("update") or {}).get("last_error") or {}


def _kept(health: dict[str, Any], version: str, state: str = "current") -> bool:
    return health["system"]["version"] == version and (health.get("update") or {}).get("state") == state


def check_image_version(port: int, key: str) -> None:
    """/health names the image and its build.version (os-release's IMAGE_ID and IMAGE_VERSION) to a key holder."""
    keyed = httpx.get(f"http://127.0.0.1:{port}/health", headers={"Authorization": f"Bearer {key}"}, timeout=60)
    system = keyed.json()["system"]
    assert (system["version"], system["image"]) == (VERSION, "cortex-x86-64-uefi")
    assert "system" not in httpx.get(f"http://127.0.0.1:{port}/health", timeout=60).json()


def check_service(ssh: Ssh) -> None:
    state = ssh.ok("systemctl show cortex -p Type,ActiveState,SubState,User", 60)
    assert state.splitlines() == ["Type=notify", "User=cortex", "ActiveState=active", "SubState=running"]
    score = ssh.ok("systemd-analyze security --no-pager cortex.service", 120)
    assert float(score.split("Overall exposure level for cortex.service: ")[1].split()[0]) <= MAX_EXPOSURE
    assert ssh.ok("hostname") == "cortex-test"
    assert ssh.ok("ls /etc/ssh/ssh_host_ed25519_key") == "/etc/ssh/ssh_host_ed25519_key"


def check_grown_data_and_key_file(ssh: Ssh) -> None:
    """First boot grew the data partition (the disk's last) by what the disk gained when copied."""
    size_mib = int(ssh.ok("df --output=size -BM /data | tail -1").strip().rstrip("M"))
    assert size_mib > GROWN_BY_MIB, f"the data partition is {size_mib} MiB: not grown"
    assert ssh.ok("stat -c '%U:%G %a' /etc/cortex/api-keys") == "root:cortex 640"


def check_sync(ssh: Ssh, image: Image, port: int, key: str, folder: Path) -> None:
    """cortex-sync.service under its own unit: failing to reach the remote since boot (nothing serves it yet), then
    a commit the image's key signed is fetched over https (trusting the Cortexfile's own CA), applied and served;
    an unsigned one is refused and reported with its commit while the device keeps serving the signed one."""
    assert ssh.ok("systemctl is-active cortex-sync") == "active"
    assert image.sync_port is not None
    assert image.sync_certificate is not None
    owner_and_mode = "stat -c '%U:%G %a' /etc/cortex/Cortexfile.yaml"
    installed = ssh.ok(owner_and_mode)
    unreachable = sync_health(port, key, lambda sync: sync["last_error"] is not None)
    assert unreachable["commit"] is None
    folder.mkdir()
    remote = GitRemote(folder)
    signed = remote.commit(image.cortexfile.read_text() + SYNCED, image.ssh_key)
    with remote.https(image.sync_port, image.sync_certificate):
        applied = sync_health(port, key, lambda sync: sync["commit"] == signed)
        assert applied["last_error"] is None
        assert ssh.ok("grep -c 'max_tokens: 77' /etc/cortex/Cortexfile.yaml") == "1"
        assert ssh.ok(owner_and_mode) == installed  # replaced, keeping the installer's owner and mode
        unsigned = remote.commit(image.cortexfile.read_text(), None)
        refused = sync_health(port, key, lambda sync: (sync["last_error"] or {}).get("commit") == unsigned)
    assert refused["commit"] == signed  # still serving the last good one
    assert refused["last_error"]["message"] == f"commit {unsigned[:12]} is not signed by a trusted key"
    journal = ssh.ok("journalctl -u cortex-sync --no-pager -o cat")
    assert f"sync: applied commit {signed}" in journal
    assert f"commit {unsigned[:12]} is not signed by a trusted key" in journal


def sync_health(port: int, key: str, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """/health's `config.sync` (as a key holder sees it) once `wanted` holds."""
    deadline = time.monotonic() + SYNC_S
    sync: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(f"http://127.0.0.1:{port}/health", headers={"Authorization": f"Bearer {key}"}, timeout=60)
        sync = answer.json()["config"].get("sync") or {}
        if sync and wanted(sync):
            return sync
        time.sleep(3)
    raise AssertionError(f"/health config.sync after {SYNC_S}s: {sync}")
