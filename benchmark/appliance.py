"""The appliance under test: `cortex start` on the Cortexfile, on a free loopback port, as a child process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.runtime.ops.text import printable

from .client import Client
from .errors import BenchError

READY_S = 600.0
POLL_S = 0.05
STOP_S = 30.0
LOG_TAIL = 1500


@dataclass(frozen=True)
class Launch:
    """How to start it: the Cortexfile, the setting flags to pass on, and the scheme it will serve."""

    cortexfile: Path
    flags: tuple[str, ...] = ()
    tls_ca: str | None = None  # the server's own certificate when it serves TLS

    @property
    def scheme(self) -> str:
        return "https" if self.tls_ca else "http"


@dataclass(frozen=True)
class Started:
    health_s: float  # process start to /health answering (interpreter, app)
    ready_s: float  # process start to /ready 200 (every load-at-start model loaded)


class Appliance:
    def __init__(self, launch: Launch, api_key: str | None) -> None:
        self.port = _free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="cortex-bench-", suffix=".log", delete=False)  # noqa: SIM115
        command = [sys.executable, "-m", "menlo_cortex", "start", "-f", str(launch.cortexfile), *launch.flags,
                   "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        self.launched = time.perf_counter()
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.client = Client(f"{launch.scheme}://127.0.0.1:{self.port}", api_key, ca_file=launch.tls_ca)

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, deadline_s: float = READY_S) -> Started:
        health_s = None
        deadline = self.launched + deadline_s
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"cortex start exited with {self.process.returncode}: {self.log_tail()}")
            if health_s is None and self.client.answers("/health") == 200:
                health_s = time.perf_counter() - self.launched
            if health_s is not None and self.client.answers("/ready") == 200:
                return Started(health_s, time.perf_counter() - self.launched)
            time.sleep(POLL_S)
        raise BenchError(f"cortex start was not ready within {deadline_s:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        """The end of the appliance's output, as one printable line."""
        with open(self.log.name, "rb") as log:
            log.seek(max(0, os.fstat(log.fileno()).st_size - LOG_TAIL))
            text = log.read().decode("utf-8", errors="replace")
        return " / ".join(printable(line, LOG_TAIL) for line in text.splitlines() if line.strip()) or "(no output)"

    def stop(self) -> None:
        """SIGTERM, SIGKILL after STOP_S (or at once when interrupted again); the log file goes in any case."""
        try:
            self.client.close()
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                self.process.wait(STOP_S)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            self.process.kill()
            self.process.wait()
        finally:
            self.log.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.log.name)


def evict_from_page_cache(path: Path) -> str:
    """Drop a file's pages from the page cache (no root needed); says how, or why not."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError as exc:
        return f"not cold: cannot open the model file ({exc.strerror})"
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError as exc:
        return f"not cold: the page cache kept the model file ({exc.strerror})"
    finally:
        os.close(descriptor)
    return "model file's pages dropped from the page cache (posix_fadvise DONTNEED; pages another process maps stay)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
