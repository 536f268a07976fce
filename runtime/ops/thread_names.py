"""Names for the runtime's threads as the kernel sees them (`/proc/PID/task/TID/comm`, top -H, perf), so
a profile tells the server's Python threads from llama.cpp's workers (bench/per_token.py reads them).

Python 3.11 names threads for itself only. A thread a named one starts inherits its name, so the batch
thread is named after its first decode has started llama.cpp's workers: they keep the process's name.
"""

from __future__ import annotations

import ctypes
import functools

PR_SET_NAME = 15
MAX_BYTES = 15  # the kernel's TASK_COMM_LEN, less the terminating zero


@functools.cache
def _prctl() -> object | None:
    try:  # the C library this process already has: no search, no subprocess
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def name_this_thread(name: str) -> None:
    """Best effort: where there is no prctl (not Linux), the thread keeps its name; naming never fails a thread."""
    prctl = _prctl()
    if callable(prctl):
        try:
            prctl(PR_SET_NAME, name.encode("ascii", "replace")[:MAX_BYTES], 0, 0, 0)
        except Exception:  # a name is a convenience for profilers, never worth a thread
            return
