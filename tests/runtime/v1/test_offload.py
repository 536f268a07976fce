"""The worker threads that take CPU-bound checks off the event loop: deadline, and places held by overruns."""

from __future__ import annotations

import asyncio
import threading

import pytest
from menlo_cortex.runtime.http.errors import ApiError
from menlo_cortex.runtime.v1.offload import Offload

SHORT_S = 0.2
STUCK_S = 5.0  # how long a stuck check may hold a place at most in these tests (it is released sooner)


def refuse() -> int:
    raise ApiError(400, "refused")


def test_work_runs_off_the_loop_and_its_errors_cross_over() -> None:
    async def scenario() -> None:
        offload = Offload(workers=1)
        loop_thread = threading.get_ident()
        assert await offload.run(threading.get_ident, SHORT_S * 10, "x") != loop_thread
        with pytest.raises(ApiError, match="refused"):
            await offload.run(refuse, SHORT_S * 10, "x")

    asyncio.run(scenario())


def test_an_overrun_is_a_503_and_keeps_its_place_until_it_ends() -> None:
    release = threading.Event()

    async def scenario() -> None:
        offload = Offload(workers=1)
        with pytest.raises(ApiError, match=r"Checking took longer than 0.2 s \(server limit\)") as late:
            await offload.run(lambda: release.wait(STUCK_S), SHORT_S, "Checking")
        assert late.value.status == 503
        with pytest.raises(ApiError) as busy:  # the only place is still held by the stuck check
            await offload.run(lambda: 1, SHORT_S, "Checking")
        assert busy.value.status == 503
        release.set()
        assert await offload.run(lambda: 2, STUCK_S, "Checking") == 2

    try:
        asyncio.run(scenario())
    finally:
        release.set()
