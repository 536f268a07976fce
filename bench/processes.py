"""What the serving benchmarks share: a free local port, and a server process stopped the way systemd would."""

from __future__ import annotations

import signal
import socket
import subprocess

STOP_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes], timeout_s: float = STOP_S) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout_s`."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
