"""uvicorn's server, waking once a second instead of ten times.

uvicorn polls for its exit every 100 ms and refreshes the Date header every tenth poll. Those ten wake-ups a second
were most of an idle appliance's event loop CPU (about 3 ms a second on a 2-core Xeon VM), and while serving each
took a core from the decode. Here the loop sleeps to the next second, when the Date header changes, and a stop wakes
it at once: setting `should_exit` (uvicorn's signal handler does, and so may any thread) schedules the wake-up on
the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import uvicorn


class Server(uvicorn.Server):
    TICK_S = 1.0  # the Date header's resolution: it is refreshed at each tick
    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    @property  # uvicorn's is a plain attribute
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        loop, wake = self._loop, self._wake
        if value and loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing is left to wake
                loop.call_soon_threadsafe(wake.set)

    async def main_loop(self) -> None:
        self._wake, self._loop = asyncio.Event(), asyncio.get_running_loop()
        ticks_per_tick = round(self.TICK_S * 10)  # uvicorn counts in its 100 ms ticks: its Date refresh is every 10th
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + ticks_per_tick) % 864000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._until_next_tick()):
                    await self._wake.wait()

    def _until_next_tick(self) -> float:
        """To the next whole multiple of TICK_S in wall-clock time (a whole second: the Date header's next value)."""
        return self.TICK_S - time.time() % self.TICK_S + 0.001
