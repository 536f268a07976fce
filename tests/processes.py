"""Stopping the helper processes tests start (podman services, registries, qemu)."""

from __future__ import annotations

import subprocess
from typing import Any


def stop(process: subprocess.Popen[Any], grace_s: float = 15) -> None:
    """SIGTERM, then SIGKILL when it has not exited within `grace_s`; always reaped."""
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)
