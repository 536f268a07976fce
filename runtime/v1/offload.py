"""CPU-bound request checks (JSON schema -> grammar) on a few threads of their own, each with a deadline.

The event loop only awaits. A thread cannot be stopped, so the work is bounded by size limits first and the
deadline is a backstop: a check that overruns it answers 503 at once but keeps its place until it ends, so
overruns cannot pile up more than `workers` threads. The threads are daemons: one still running cannot hold
up the process when it stops (a ThreadPoolExecutor's threads are joined at exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from ..http.errors import ApiError

T = TypeVar("T")
WORKERS = 2
DEADLINE_S = 10.0  # far above what the size limits allow (well under a second); a backstop for a loaded host


class Offload:
    """One per app; it holds no thread while idle."""

    def __init__(self, workers: int = WORKERS, deadline_s: float = DEADLINE_S) -> None:
        self.deadline_s = deadline_s
        self._free = asyncio.Semaphore(workers)

    async def run(self, work: Callable[[], T], deadline_s: float, what: str) -> T:
        """`work()` on a worker thread; a 503 naming the deadline when no worker is free in time or it overruns."""
        deadline_s = min(deadline_s, self.deadline_s)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await asyncio.wait_for(self._free.acquire(), deadline_s)
        except TimeoutError:
            raise _late(what, deadline_s) from None
        future: Future[T] = Future()
        thread = threading.Thread(target=_work, args=(work, future, loop, self._free), name="cortex-check", daemon=True)
        thread.start()
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), max(deadline_s - (loop.time() - started), 0.001))
        except TimeoutError:
            raise _late(what, deadline_s) from None


def _work(work: Callable[[], T], future: Future[T], loop: asyncio.AbstractEventLoop, free: asyncio.Semaphore) -> None:
    """The thread's body: run unless nobody waits any more, then give the place back, whatever happened."""
    try:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(work())
            except BaseException as exc:  # crosses to the event loop, which renders it (ApiError: a 400)
                future.set_exception(exc)
    finally:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped
            loop.call_soon_threadsafe(free.release)


def _late(what: str, deadline_s: float) -> ApiError:
    return ApiError(
        503,
        f"{what} took longer than {deadline_s:g} s (server limit); retry later or send less.",
        code="timeout",
        headers={"Retry-After": "1"},
    )
