"""The whole path on real parts: bundle -> install.sh into a debootstrap'd Debian 12 root -> UEFI disk
image -> boot under qemu with the unit enabled -> a chat completion through the forwarded port, under
systemd's real sandbox. Then, inside the running VM: `systemctl reload`, an upgrade to the next bundle,
and an upgrade to a bundle that cannot start, which install.sh rolls back."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import find_free_port

from .fixtures import API_KEY, Built, build_bundle, copy_root, debian_root, install, write_api_key
from .test_security import MAX_EXPOSURE
from .vm.agent import Agent, Result, install_guest_agent
from .vm.disk import make_disk
from .vm.qemu import Vm, boot

# What no fixture shows: the test boots a VM, and makes its debootstrap'd root itself. It takes 11-16
# minutes under emulation (its own waits add up to far more): a hang fails after an hour.
pytestmark = [pytest.mark.slow, pytest.mark.vm, pytest.mark.engine, pytest.mark.timeout(3600)]
GUEST_PORT = 8000
FIRST_ANSWER_S = 1200  # software emulation (no KVM) boots and loads slowly
CHAT_S = 600  # a few tokens take minutes under emulation on a busy 2-core machine
BAD_MODEL = """\
  - id: missing
    source: /nonexistent/model.gguf
build:
  bake_models: false
  systemd:
    start_timeout_s: 60
"""


def chat(port: int) -> str:
    body = {"model": "gemma", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=CHAT_S) as response:
        return str(json.load(response)["choices"][0]["message"]["content"])


def first_chat(vm: Vm) -> str:
    deadline = time.monotonic() + FIRST_ANSWER_S
    while True:
        assert vm.process.poll() is None, f"qemu exited {vm.process.returncode}: {vm.console_tail()}"
        try:
            return chat(vm.host_port)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"no chat completion in {FIRST_ANSWER_S}s ({exc}): {vm.console_tail()}") from exc
        time.sleep(2)  # the guest is booting: poll again, up to the deadline


def ok(result: Result) -> str:
    assert result.rc == 0, result.stdout + result.stderr
    return result.stdout.strip()


def prepare_root(tmp_path: Path, store: Path, agent_port: int) -> tuple[Path, Built, Built, Built]:
    root = copy_root(debian_root(), tmp_path / "root")
    first = build_bundle(tmp_path / "v1", store)
    second = build_bundle(tmp_path / "v2", store, context=256, extra="build:\n  bake_models: false\n")
    broken = build_bundle(tmp_path / "v3", store, context=256, extra=BAD_MODEL)
    write_api_key(root)
    done = install(first.bundle.folder, root)
    assert done.returncode == 0, done.stderr
    for built in (second, broken):
        shutil.copytree(built.bundle.folder, root / "root" / "bundles" / built.bundle.folder.name)
    install_guest_agent(root, agent_port)
    return root, first, second, broken


def used_mib(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*")) >> 20


def test_boot_serve_reload_upgrade_and_roll_back(tmp_path: Path, test_data_dir: Path) -> None:
    with Agent() as agent:
        root, _first, second, broken = prepare_root(tmp_path, test_data_dir, agent.port)
        disk = make_disk(root, tmp_path, used_mib(root) + 1200)
        shutil.rmtree(root)
        started = time.monotonic()
        with boot(disk, find_free_port(), GUEST_PORT) as vm:
            assert first_chat(vm)
            print(f"first chat completion {time.monotonic() - started:.0f}s after qemu started")
            state = ok(agent.run(["systemctl", "show", "cortex", "-p", "Type,ActiveState,SubState,User"], 60))
            assert state.splitlines() == ["Type=notify", "User=cortex", "ActiveState=active", "SubState=running"]
            score = ok(agent.run(["systemd-analyze", "security", "--no-pager", "cortex.service"], 120))
            assert float(score.split("Overall exposure level for cortex.service: ")[1].split()[0]) <= MAX_EXPOSURE

            ok(agent.run(["systemctl", "reload", "cortex"], 60))
            assert ok(agent.run(["systemctl", "is-active", "cortex"], 60)) == "active"

            upgrade = agent.run([f"/root/bundles/{second.bundle.folder.name}/install.sh"], 900)
            assert upgrade.rc == 0, upgrade.stderr
            print(upgrade.stderr.strip().splitlines()[-1])  # "cortex VERSION installed in Ns (was ...)"
            assert ok(agent.run(["readlink", "/opt/cortex/current"], 30)) == second.bundle.plan.version
            assert chat(vm.host_port)

            failed = agent.run([f"/root/bundles/{broken.bundle.folder.name}/install.sh"], 900)
            assert failed.rc == 1, failed.stderr
            assert f"rolling back to {second.bundle.plan.version}" in failed.stderr
            assert ok(agent.run(["readlink", "/opt/cortex/current"], 30)) == second.bundle.plan.version
            assert ok(agent.run(["cat", "/etc/cortex/Cortexfile.yaml"], 30)) == second.cortexfile.decode().strip()
            assert chat(vm.host_port)
