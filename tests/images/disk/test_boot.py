"""The device image on real parts: `cortex build --format disk` -> the raw image (copied onto a larger
disk, as flashing a bigger card does) -> UEFI boot under qemu (OVMF, software emulation) -> the API key
first boot made, read from the serial console -> a chat completion with the openai client through a
forwarded port. Then over SSH (the image's own, key login): the hardened service, the grown root, the
key file's owner and mode, `systemctl reload`, an upgrade to the next bundle and an upgrade that cannot
start, which install.sh rolls back; cortex-sync.service following a repository served from the host (a signed
commit applied and served, an unsigned one refused); a reboot keeps the key, shows none again and keeps the
grown root."""

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

# What no fixture shows: the test boots a VM. Under emulation it takes 12-18 minutes; a hang fails after an hour.
pytestmark = [pytest.mark.slow, pytest.mark.vm, pytest.mark.timeout(3600)]
FIRST_ANSWER_S = 1200  # software emulation boots and loads slowly
CHAT_S = 600  # a few tokens take minutes under emulation on a busy 2-core machine
GROWN_BY_MIB = 2048
SYNC_S = 300  # a round every 10 s, then a reload under emulation
SYNCED = "server:\n  limits:\n    max_tokens: 77\n"  # a live setting: applied without reloading the model
NO_BAKE = "  bake_models: false\n"  # added to the image Cortexfile's build section
BROKEN = NO_BAKE + "  systemd:\n    start_timeout_s: 60\n"
MISSING_MODEL = "models:\n  - id: missing\n    source: /nonexistent/model.gguf\n"


def chat(port: int, key: str) -> str:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, timeout=CHAT_S, max_retries=0)
    reply = client.chat.completions.create(
        model="gemma", messages=[{"role": "user", "content": "Say hello."}], max_tokens=4
    )
    return reply.choices[0].message.content or ""


def first_chat(vm: Vm, key: str) -> str:
    deadline = time.monotonic() + FIRST_ANSWER_S
    while True:
        assert vm.process.poll() is None, f"qemu exited {vm.process.returncode}: {vm.console_tail()}"
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
    device_image: Image, tmp_path: Path, test_data_dir: Path
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
        check_grown_root_and_key_file(ssh)
        key_digest = ssh.ok("sha256sum /etc/cortex/api-keys")

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

        ssh.run("systemctl reboot", 30)
        time.sleep(20)  # the old system goes down before the first poll
        assert first_chat(vm, key)  # the same key: first boot's key survives
        assert ssh.ok("sha256sum /etc/cortex/api-keys") == key_digest
        assert vm.key_notices() == 1  # made once, never again
        assert vm.api_keys_shown() == []  # never on the serial console (a cloud provider may keep its log)
        check_grown_root_and_key_file(ssh)


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


def check_grown_root_and_key_file(ssh: Ssh) -> None:
    size_mib = int(ssh.ok("df --output=size -BM / | tail -1").strip().rstrip("M"))
    disk_mib = int(ssh.ok("lsblk -bdno SIZE /dev/vda")) >> 20
    assert size_mib > disk_mib - 400, f"root is {size_mib} MiB on a {disk_mib} MiB disk: not grown"
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
