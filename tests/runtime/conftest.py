"""Fixtures running the real `cortex start` in a subprocess, with the real test model, always stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.cortex_server import CortexServer, StartServer, launch, running


@pytest.fixture
def start_cortex(tmp_path: Path, cortex_command: list[str], test_data_dir: Path) -> Iterator[StartServer]:
    """`start_cortex(body, args=..., env=..., ready=True)`: a running server; every one is stopped at teardown."""
    started: list[CortexServer] = []

    def start(body: str = "", *, ready: bool = True, **kwargs: object) -> CortexServer:
        folder = tmp_path / f"server{len(started)}"
        folder.mkdir()
        server = launch(folder, cortex_command, test_data_dir, body, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.terminate()


@pytest.fixture(scope="module")
def shared_server(
    tmp_path_factory: pytest.TempPathFactory, cortex_command: list[str], test_data_dir: Path
) -> Iterator[CortexServer]:
    """One plain loopback server for the tests that need no special config."""
    with running(tmp_path_factory.mktemp("shared"), cortex_command, test_data_dir) as server:
        yield server
