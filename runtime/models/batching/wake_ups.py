"""Wake-ups the scheduler's thread owes other threads, held until it is about to let go of the GIL.

A token handed to the event loop in the middle of the scheduler's Python (right after sampling, with the next step
still to plan) woke the loop's thread only for it to take a core, wait for the GIL and be woken a second time when
the decode released it: 2.1 wake-ups of the loop a token at one stream on two cores, and as many preemptions of the
scheduler (bench/scheduler_cpu.py). Held, each wake-up goes out just before `llama_decode` (which runs without the
GIL), before a costly sampling (a grammar's parse or a full chain, likewise), or before the thread waits for work:
1.05 and 1.1.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_held = threading.local()
log = logging.getLogger("cortex.batching")


def wake(call: Callable[[], None]) -> None:
    """`call` now, or, on a thread that holds its wake-ups, at its next `send()`."""
    pending: list[Callable[[], None]] | None = getattr(_held, "pending", None)
    if pending is None:
        call()
    else:
        pending.append(call)


def send() -> None:
    """Every wake-up this thread holds, in the order they were asked for."""
    pending: list[Callable[[], None]] | None = getattr(_held, "pending", None)
    while pending:
        _call(pending.pop(0))  # one at a time: an interruption leaves the rest held, not lost


def _call(call: Callable[[], None]) -> None:
    try:
        call()
    except Exception:  # as a callback of the thread's own would be: logged, and the others still sent
        log.exception("a wake-up failed")


@contextmanager
def held() -> Iterator[None]:
    """This thread's wake-ups wait for `send()` until the block ends, when the rest go out (a block within another
    sends its own at its end and leaves the outer one's held)."""
    outer = getattr(_held, "pending", None)
    pending: list[Callable[[], None]] = []
    _held.pending = pending
    try:
        yield
    finally:
        try:
            send()
        finally:
            if outer is None:
                del _held.pending
            else:
                _held.pending = outer
            for call in pending:  # what an interrupted send left: a wake-up lost would stall its loop's streams
                wake(functools.partial(_call, call))
