"""The README's quickstart, line by line as written, after set-up, on a fresh data folder: set-up's own step
places the test model (scripts/test-model.py --default-store), then `cortex validate`, `cortex start` (served
until the end), the `curl` chat completion and `cortex build --format systemd` run exactly as the README shows."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cache_dir
from tests.processes import stop

ROOT = Path(__file__).resolve().parent.parent
PORT = 39281  # the README's: the default port
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def quickstart_lines() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Quickstart", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block is not None, "the README's Quickstart has no sh block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_quickstart_block_is_what_this_test_runs() -> None:
    lines = quickstart_lines()
    assert lines[0] == ". .venv/bin/activate"
    assert [line.split()[:2] for line in lines[1:]] == [
        ["cortex", "validate"], ["cortex", "start"], ["curl", "-s"], ["cortex", "build"]
    ]  # fmt: skip


def test_every_quickstart_command_works_as_written(tmp_path: Path, test_data_dir: Path) -> None:
    activate, validate, start, chat, build = quickstart_lines()
    for name in ("examples", ".venv"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}  # fresh: only what set-up places
    setup_step = [sys.executable, "scripts/test-model.py", str(cache_dir() / "test-data"), "--default-store"]
    subprocess.run(setup_step, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)

    def shell(line: str) -> list[str]:
        return ["bash", "-c", f"{activate} && {line}"]

    def run(line: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(shell(line), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout_s,
                              check=False)  # fmt: skip

    checked = run(validate, 120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "start preflight passed" in checked.stdout
    assert "llama.cpp backends: CPU" in checked.stdout  # the CPU variant cortex start will use, self-tested
    assert _port_free(), f"port {PORT}, the README's, is taken: something else serves there"
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(shell(start), cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    try:
        _wait_ready(server, tmp_path / "server.log")
        answer = run(chat, 300)
        assert answer.returncode == 0, answer.stderr
        reply = json.loads(answer.stdout)
        assert reply["model"] == "gemma-3-270m"
        assert reply["choices"][0]["message"]["content"].strip()
    finally:  # the shell and the server it started, as Ctrl-C in its terminal would
        os.killpg(server.pid, signal.SIGINT)
        stop(server, grace_s=30)
        log.close()
    built = run(build, 600)
    assert built.returncode == 0, built.stdout + built.stderr
    assert len(list((tmp_path / "out").glob("*/install.sh"))) == 1
    assert len(list((tmp_path / "out").glob("*/models/*.gguf"))) == 1  # baked from the default data folder


def _port_free() -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", PORT)) != 0


def _wait_ready(server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert server.poll() is None, f"cortex start exited {server.returncode}: {log.read_text()[-3000:]}"
        probe = subprocess.run(["curl", "-fs", f"http://127.0.0.1:{PORT}/ready"], capture_output=True, check=False)
        if probe.returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"not ready in 300 s: {log.read_text()[-3000:]}")
