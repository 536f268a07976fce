"""This machine's memory bandwidth, measured once and kept: generating a token reads every weight, so on a CPU
the rate is bounded by how fast memory is read.

Every core copies its own buffers (numpy releases the GIL while it copies), for about two seconds. The figure
is bytes copied per second: the rate at which memory is read while the cores also write, as a decode reads
weights while it computes (STREAM's Copy would count each byte twice, read and written). It is cached per CPU
model, core count and memory size under `~/.cache/cortex/bandwidth.json`: `cortex models fit` measures once
per machine.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from menlo_cortex.runtime.ops.durable import write_atomically

BUFFER_BYTES = 32 * 1024 * 1024  # per core: well past any cache
MEASURE_S = 2.0
KIND = "copy-v1"  # what the cached figures are: a changed definition measures again


def cache_file(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME", "~")) / ".cache")
    return Path(base).expanduser() / "cortex" / "bandwidth.json"


def memory_bandwidth(machine_key: str, cache: Path, *, measure_s: float = MEASURE_S) -> tuple[float, bool]:
    """Bytes per second, and whether it was measured now (False: from the cache)."""
    machine_key = f"{KIND}|{machine_key}"
    known = _cached(cache).get(machine_key)
    if isinstance(known, int | float) and known > 0:
        return float(known), False
    measured = measure(measure_s)
    entries = {**_cached(cache), machine_key: measured}
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(cache, json.dumps(entries, indent=1).encode(), 0o644)
    return measured, True


def measure(seconds: float = MEASURE_S, workers: int | None = None) -> float:
    import numpy as np

    count = workers or len(os.sched_getaffinity(0))
    buffers = [(np.ones(BUFFER_BYTES, np.uint8), np.empty(BUFFER_BYTES, np.uint8)) for _ in range(count)]
    copied = [0] * count
    start = threading.Barrier(count + 1)
    deadline = [0.0]

    def copy(index: int) -> None:
        source, target = buffers[index]
        start.wait()
        while time.perf_counter() < deadline[0]:
            np.copyto(target, source)
            copied[index] += BUFFER_BYTES

    threads = [threading.Thread(target=copy, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    return sum(copied) / (time.perf_counter() - began)


def _cached(cache: Path) -> dict[str, Any]:
    try:
        entries = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}
