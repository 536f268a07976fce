"""A real `cortex start` process for tests: launched on a free port, polled until ready, stopped by SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

READY_DEADLINE_S = 90.0
STOP_DEADLINE_S = 20.0
MODEL_ID = "gemma"
MODEL_BLOCK = f"""\
models:
  - id: {MODEL_ID}
    preset: gemma3-270m-q4km
    context_size: 1024
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class CortexServer:
    """One `cortex start` process; its stdout and stderr go to `log_file` (a pipe could fill and block it)."""

    process: subprocess.Popen[bytes]
    port: int
    scheme: str
    log_file: Path
    cortexfile: Path
    ca_file: Path | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def client(self, timeout: float = 60) -> httpx.Client:
        """An HTTP client for this server; with TLS it trusts only the test's own certificate."""
        return httpx.Client(base_url=self.base_url, verify=self.verify(), timeout=timeout)

    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else True

    def output(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, deadline_s: float = READY_DEADLINE_S) -> None:
        """Poll /ready until 200; fail with the server's output if it exits or the deadline passes."""
        deadline = time.monotonic() + deadline_s
        with self.client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"cortex start exited with {self.process.returncode}:\n{self.output()}")
                try:
                    if client.get("/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)  # poll interval, not synchronization: the deadline bounds the wait
        pytest.fail(f"cortex start not ready within {deadline_s}s:\n{self.output()}")

    def terminate(self) -> int:
        """SIGTERM, wait for the graceful stop; kill only when it does not come."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"cortex start ignored SIGTERM for {STOP_DEADLINE_S}s:\n{self.output()}")


StartServer = Callable[..., CortexServer]


def write_cortexfile(folder: Path, body: str, name: str = "Cortexfile.yaml", models: str = MODEL_BLOCK) -> Path:
    path = folder / name
    path.write_text("version: 1\n" + textwrap.dedent(body) + models, encoding="utf-8")
    return path


@contextlib.contextmanager
def running(*arguments: Any, **options: Any) -> Iterator[CortexServer]:
    """`launch`, ready, and stopped when the block ends (a module fixture's server)."""
    server = launch(*arguments, **options)
    try:
        server.wait_ready()
        yield server
    finally:
        server.terminate()


def launch(
    folder: Path,
    cortex_command: list[str],
    data_dir: Path,
    body: str = "",
    *,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    port: int | None = None,
    ca_file: Path | None = None,
    models: str = MODEL_BLOCK,
) -> CortexServer:
    """Start `cortex start` without waiting; the caller (a fixture) must terminate it."""
    cortexfile = write_cortexfile(folder, body, models=models)
    port = port or free_port()
    log_file = folder / f"server-{port}.out"
    command = [*cortex_command, "start", "-f", str(cortexfile), "--port", str(port), "--datapath", str(data_dir), *args]
    with log_file.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    scheme = "https" if "cert:" in body else "http"
    return CortexServer(process, port, scheme, log_file, cortexfile, ca_file)
