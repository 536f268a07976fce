"""One generation's chunks on their way from its request thread to the event loop.

The thread hands each chunk over with one call to the loop; the reader takes them as they come, and each chunk
costs the loop one wake-up and one future, with no task or queue between (a hop each used to cost a loop pass
per token). Chunks are taken whether anyone reads them or not: a client that reads slowly, or never, does not
hold the model's place, which `on_end` gives back once the generation has ended and its thread let go. Held in
memory meanwhile: at most max_tokens chunks.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

import anyio

Chunk = dict[str, Any]
END = object()  # the thread's last item: nothing follows


class Feed:
    """An async iterator of chunks; aclose() stops the generation and waits for its thread to let go."""

    def __init__(self, cancel: Callable[[], None], on_end: Callable[[], Awaitable[None]] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._items: collections.deque[object] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._cancel, self._on_end = cancel, on_end
        self._thread: Future[None] | None = None
        self._ending: asyncio.Future[None] | None = None

    def start(self, thread: Future[None]) -> None:
        self._thread = thread

    def put(self, item: object) -> None:
        """From the request thread: a chunk, the exception that ended the generation, or END."""
        self._loop.call_soon_threadsafe(self._arrive, item)

    def sink(self, convert: Callable[[Any], list[Chunk]], ends: Callable[[Any], bool]) -> Callable[[Any], None]:
        """For a sequence the loop reads itself: what the scheduler's thread hands each piece, its end or an error
        to. `convert` makes a piece's chunks, on the loop; after the item that `ends`, or an error, nothing more."""

        def arrive(item: object) -> None:
            if isinstance(item, BaseException):
                self._arrive(item)
                self._arrive(END)
                return
            for chunk in convert(item):
                self._arrive(chunk)
            if ends(item):
                self._arrive(END)

        def hand(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody reads, and the scheduler goes on
                self._loop.call_soon_threadsafe(arrive, item)

        return hand

    def _arrive(self, item: object) -> None:
        self._items.append(item)
        if item is END and self._ending is None:
            self._ending = asyncio.ensure_future(self._end())
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> Feed:
        return self

    async def __anext__(self) -> Chunk:
        while not self._items:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items[0]
        if item is END:  # it stays: the end stays the end
            raise StopAsyncIteration
        self._items.popleft()
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[return-value]

    async def aclose(self) -> None:
        """The reader is done (the answer sent, the client gone, a stop sequence met): the generation stops at its
        next step, and this returns once its thread has let go and the place is given back."""
        self._cancel()
        if self._ending is None:
            self._ending = asyncio.ensure_future(self._end())
        # anyio (a streaming response's task group) cancels again and again: asyncio.shield alone would give way,
        # and the request's place would be released while its thread still runs.
        with anyio.CancelScope(shield=True):
            await self._ending

    async def _end(self) -> None:
        """Once, however it ends: wait for the thread to let go (one still queued never runs), then give the place
        back."""
        thread = self._thread
        if thread is not None and not thread.cancel():
            await asyncio.gather(asyncio.wrap_future(thread), return_exceptions=True)
        if self._on_end is not None:
            await self._on_end()
