"""What the systemd target refuses, and how: located errors and exit 2 for settings the sandbox
cannot honour, exit 1 for a target the bundle cannot contain, and an installer that stops before
writing anything on a host without systemd."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.images.artifacts import write_tree
from menlo_cortex.images.targets.systemd.render import render

from .conftest import PROJECT_WHEEL, plan_for

BAD = {
    "privileged-port": ("server:\n  port: 80\n", "server.port", "below 1024"),
    "models-read-only": ("data:\n  path: /srv/models\n", "data.path", "read-only inside the service's sandbox"),
    "logs-read-only": ("logs:\n  path: /home/me/logs\n", "logs.path", "read-only inside the service's sandbox"),
    "alpine": ("target:\n  distro: alpine\n", "target.distro", "Debian/Ubuntu"),
    "baked-without-sha": ("models:\n  - {id: m, source: m.gguf}\n", "models[0].sha256", "give its sha256"),
}


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "Cortexfile.yaml"
    path.write_text("version: 1\n" + textwrap.dedent(body), encoding="utf-8")
    return path


def build_command(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "menlo_cortex", "build", "--format", "systemd", *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.parametrize("case", sorted(BAD))
def test_plan_refuses_with_a_located_error(case: str, tmp_path: Path) -> None:
    body, key, words = BAD[case]
    with pytest.raises(ConfigError) as caught:
        plan_for(write(tmp_path, body))
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.key == key
    assert words in diagnostic.message
    assert diagnostic.origin.line == 3  # the key's own line, or its list entry's


def test_cli_exits_2_naming_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, BAD["privileged-port"][0])
    done = build_command("-f", str(path), "-o", str(tmp_path / "out"))
    assert done.returncode == 2
    assert f"{path}:3:9: server.port: port 80 is below 1024" in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_key_file_outside_the_config_folder_by_dot_dot_is_a_located_error(tmp_path: Path) -> None:
    """/etc/cortex/../shadow starts with /etc/cortex: the installer would have given it to the
    service's group (chown root:cortex, chmod 0640). Refused before anything is written."""
    path = write(tmp_path, "server:\n  auth:\n    api_key_file: /etc/cortex/../shadow\n")
    done = build_command("-f", str(path), "-o", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert f"{path}:4:19: server.auth.api_key_file: `/etc/cortex/../shadow` has a `..` segment" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_privileged_port_with_the_capability_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 80\nbuild:\n  systemd:\n    allow_privileged_port: true\n")
    assert plan_for(path).capabilities == ("CAP_NET_BIND_SERVICE",)


def test_an_architecture_without_a_wheel_exits_1(tmp_path: Path) -> None:
    path = write(tmp_path, "models: []\n")
    empty = tmp_path / "wheels"
    empty.mkdir()
    out = str(tmp_path / "out")
    done = build_command("-f", str(path), "-o", out, "--platform", "linux/arm64", "--wheels", str(empty))
    assert done.returncode == 1
    assert f"no llama-cpp-python 0.3.36 wheel for arm64 (aarch64) in {empty}" in done.stderr
    assert "make arm64-wheel" in done.stderr
    assert "cannot contain that architecture" in done.stderr
    assert not any((tmp_path / "out").iterdir())


def test_install_onto_a_host_without_systemd_writes_nothing(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    write_tree(render(plan_for(write(tmp_path, "models: []\n")), PROJECT_WHEEL), bundle)
    host = tmp_path / "host"
    (host / "usr" / "bin").mkdir(parents=True)
    done = subprocess.run(
        ["bash", str(bundle / "install.sh"), "--root", str(host)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "no systemd on" in done.stderr
    assert sorted(p.relative_to(host).as_posix() for p in host.rglob("*")) == ["usr", "usr/bin"]
