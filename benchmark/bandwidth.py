"""This machine's memory bandwidth, measured once and kept: generating a token reads every weight, so on a CPU
the rate is bounded by how fast memory is read.

Every core copies its own buffers (numpy releases the GIL while it copies), for about two seconds. The figure
is bytes copied per second: the rate at which memory is read while the cores also write, as a decode reads
weights while it computes (STREAM's Copy would count each byte twice, read and written). It is cached per CPU
model, core count and memory size under `~/.cache/cortex/bandwidth.json`: `cortex models fit` measures once
per machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from menlo_cortex.runtime.models.batching.plan import available_memory
from menlo_cortex.runtime.ops.durable import write_atomically

BUFFER_BYTES = 32 * 1024 * 1024  # per core: well past any cache
MEASURE_S = 2.0
KIND = "copy-v1"  # what the cached figures are: a changed definition measures again


def cache_file(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "~")) / ".cache")
    return Path(base).expanduser() / "cortex" / "bandwidth.json"


def memory_bandwidth(machine_key: str, cache: Path, *, measure_s: float = MEASURE_S) -> tuple[float | None, bool]:
    """Bytes per second, and whether it was measured now (False: from the cache). None without numpy."""
    machine_key = f"{KIND}|{machine_key}"
    known = _cached(cache).get(machine_key)
    if isinstance(known, int | float) and _plausible(known):
        return float(known), False
    try:
        measured = measure(measure_s)
    except ImportError:
        return None, False
    with contextlib.suppress(OSError):  # a read-only home: measured again next time
        write_atomically(cache, json.dumps({**_cached(cache), machine_key: measured}, indent=1).encode(), 0o644)
    return measured, True


def measure(seconds: float = MEASURE_S) -> float:
    import numpy as np

    count = max(1, min(len(os.sched_getaffinity(0)), _cgroup_cpus()))
    # Two buffers per core, well past the caches, but never more than a sixteenth of the memory left: a small
    # device running its server must not be pushed into the OOM killer by a measurement.
    size = max(1 << 20, min(BUFFER_BYTES, available_memory() // (32 * count)))
    buffers = [(np.ones(size, np.uint8), np.empty(size, np.uint8)) for _ in range(count)]
    copied = [0] * count
    deadline = time.perf_counter() + seconds

    def copy(index: int) -> None:
        source, target = buffers[index]
        while time.perf_counter() < deadline:
            np.copyto(target, source)
            copied[index] += size

    began = time.perf_counter()
    threads = [threading.Thread(target=copy, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(copied) / (time.perf_counter() - began)


def _cgroup_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores a cgroup's quota allows (`cpu.max`: quota and period, or `max`), else a large number."""
    try:
        quota, period = cpu_max.read_text(encoding="ascii").split()[:2]
        return max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        return 1 << 16


def _plausible(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 1e6 < value < 1e13


def _cached(cache: Path) -> dict[str, Any]:
    try:
        with open(cache, "rb", opener=_no_follow) as file:
            entries = json.loads(file.read(1 << 20))
    except (OSError, ValueError, RecursionError):
        return {}
    return entries if isinstance(entries, dict) else {}


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)
