"""sd_notify on a real datagram socket: the messages systemd's Type=notify relies on."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from menlo_cortex.runtime.ops import sdnotify


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def received(sock: socket.socket) -> list[str]:
    sock.setblocking(False)
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


class FakeModels:
    def __init__(self, states: list[str]) -> None:
        self.states = states

    def ready(self) -> bool:
        return all(state == "ready" for state in self.states)

    def status(self) -> list[dict[str, object]]:
        return [{"id": f"m{i}", "state": state} for i, state in enumerate(self.states)]


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False


def test_abstract_socket_address(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"cortex-test-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert sdnotify.notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"READY=1"


def test_extends_while_loading_then_ready(notify_socket: socket.socket) -> None:
    models = FakeModels(["loading"])

    async def scenario() -> None:
        task = asyncio.create_task(sdnotify.announce_until_ready(models, poll_s=0.01))
        await asyncio.sleep(0.05)
        assert not task.done()
        models.states = ["ready"]
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    messages = received(notify_socket)
    assert messages[0].startswith("EXTEND_TIMEOUT_USEC=30000000\n")
    assert messages[-1] == "READY=1\nSTATUS=serving"


def test_a_failed_model_stops_the_extensions(notify_socket: socket.socket) -> None:
    models = FakeModels(["failed"])

    async def scenario() -> None:
        task = asyncio.create_task(sdnotify.announce_until_ready(models, poll_s=0.01))
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(scenario())
    assert received(notify_socket) == ["STATUS=failed to load m0"]  # once, and no extension


@pytest.mark.slow
def test_the_server_says_ready_once_its_model_is_loaded(
    notify_socket: socket.socket,
    test_data_dir: Path,
    free_port: int,
    cortex_command: list[str],
    tmp_path: Path,
) -> None:
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text(
        f"version: 1\nserver: {{port: {free_port}}}\ndata: {{path: {test_data_dir}}}\n"
        "models:\n  - {id: gemma, preset: gemma3-270m-q4km, context_size: 512}\n",
        encoding="utf-8",
    )
    with subprocess.Popen([*cortex_command, "start", "-f", str(cortexfile)], stderr=subprocess.DEVNULL) as server:
        try:
            messages = []
            deadline = time.monotonic() + 60
            while "READY=1\nSTATUS=serving" not in messages and time.monotonic() < deadline:
                notify_socket.settimeout(max(0.1, deadline - time.monotonic()))
                messages.append(notify_socket.recv(4096).decode())
            assert messages[-1] == "READY=1\nSTATUS=serving"
            server.terminate()
            assert server.wait(30) == 0
            assert "STOPPING=1" in received(notify_socket)
        finally:
            server.kill()
