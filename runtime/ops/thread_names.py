"""Names for the runtime's threads as the kernel sees them (`/proc/PID/task/TID/comm`, top -H, perf), so
a profile tells the server's Python threads from llama.cpp's workers (bench/per_token.py reads them).

Python 3.11 names threads for itself only. A thread a named one starts inherits its name, so the batch
thread is named after its first decode has started llama.cpp's workers: they keep the process's name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

PR_SET_NAME = 15
MAX_BYTES = 15  # the kernel's TASK_COMM_LEN, less the terminating zero


@functools.cache
def _prctl() -> object | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True).prctl if name else None
    except OSError:
        return None


def name_this_thread(name: str) -> None:
    """Best effort: where there is no prctl (not Linux), the thread keeps its name."""
    prctl = _prctl()
    if callable(prctl):
        prctl(PR_SET_NAME, name.encode("ascii", "replace")[:MAX_BYTES], 0, 0, 0)
