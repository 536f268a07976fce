"""A server process's memory from /proc: resident now, the peak, and samples over time on a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MAX_SAMPLES = 600


def status_bytes(pid: int, key: str) -> int | None:
    """A `kB` line of /proc/PID/status (VmRSS, VmHWM) in bytes; None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return None


def resident(pid: int) -> int | None:
    return status_bytes(pid, "VmRSS")


def peak(pid: int) -> int | None:
    return status_bytes(pid, "VmHWM")


@dataclass
class Sampler:
    """Samples VmRSS every `interval_s` from `origin` on; halves its resolution to stay under MAX_SAMPLES."""

    pid: Callable[[], int | None]  # the process to read now (the appliance may be restarted)
    origin: float
    interval_s: float = 0.5
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="cortex-bench-memory", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            pid = self.pid()
            found = None if pid is None else resident(pid)
            if found is None:
                continue
            self.samples.append((round(time.perf_counter() - self.origin, 3), found))
            if len(self.samples) >= MAX_SAMPLES:
                self.samples[:] = self.samples[::2]
                self.interval_s *= 2
