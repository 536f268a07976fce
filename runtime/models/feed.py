"""One generation's chunks on their way to the event loop: from its request thread (put), or, for a stream whose
chunks are its text pieces one for one, from the scheduler's thread itself (sink), the request thread gone.

Each item costs the loop one future, with no task or queue between (a hop each used to cost a loop pass per
token); the scheduler's pieces for all the loop's streams share its wake-ups (Courier). Chunks are taken whether
anyone reads them or not: a client that reads slowly, or never, does not hold the model's place, which `on_end`
gives back once the generation has ended, its thread let go and its sequence left the scheduler. Held in memory
meanwhile: at most max_tokens chunks.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import threading
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

import anyio

from .batching import wake_ups
from .batching.sequence import Finished

Chunk = dict[str, Any]
END = object()  # the thread's last item: nothing follows


class Courier:
    """Hands items from the scheduler's thread to one event loop: one wake-up carries every item handed before the
    loop got to it (a step's pieces for all its streams), not one each, on either thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # the registry's key: a strong reference would keep every loop alive
        self._lock = threading.Lock()
        self._items: list[tuple[Callable[[object], None], object]] = []
        self._waking: set[int] = set()  # the threads whose wake-up is on its way (a scheduler may hold its own)

    def hand(self, arrive: Callable[[object], None], item: object) -> None:
        loop, me = self._loop(), threading.get_ident()
        with self._lock:
            if loop is None or loop.is_closed():  # nobody reads, and the scheduler goes on
                self._drop()
                return
            self._items.append((arrive, item))
            if me in self._waking:  # this thread's wake-up is on its way and will take this too
                return
            self._waking.add(me)  # another thread's may be held by it (wake_ups): this one asks for its own
        wake_ups.wake(functools.partial(self._wake, loop))

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # closed meanwhile
            with self._lock:
                self._drop()

    def drop_if_closed(self) -> None:
        loop = self._loop()
        if loop is None or loop.is_closed():
            with self._lock:
                self._drop()

    def _drop(self) -> None:
        self._items.clear()
        self._waking.clear()

    def _deliver(self) -> None:
        with self._lock:
            items, self._items = self._items, []
            self._waking.clear()
        for index, (arrive, item) in enumerate(items):
            try:
                arrive(item)
            except Exception as exc:  # as a callback of its own would: logged, and the others still delivered
                loop = self._loop()
                if loop is not None:
                    loop.call_exception_handler({"message": "a feed could not take an item", "exception": exc})
            except BaseException:  # the loop is being interrupted: the rest go first at its next pass
                self._put_back(items[index + 1 :])
                raise

    def _put_back(self, rest: list[tuple[Callable[[object], None], object]]) -> None:
        """Ahead of what came since, with a wake-up of the loop's own (one a scheduler asked for may be held)."""
        with self._lock:
            self._items[:0] = rest
        loop = self._loop()
        if rest and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver)


_registry_lock = threading.Lock()
_couriers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Courier] = weakref.WeakKeyDictionary()


def courier(loop: asyncio.AbstractEventLoop) -> Courier:
    """The loop's one courier."""
    with _registry_lock:  # each loop's thread asks for its own
        found = _couriers.get(loop)
        if found is None:
            for left in list(_couriers.values()):  # what a closed loop never took holds it alive: dropped
                left.drop_if_closed()
            found = _couriers[loop] = Courier(loop)
        return found


class Feed:
    """An async iterator of chunks; aclose() stops the generation and waits for its thread to let go."""

    def __init__(self, cancel: Callable[[], None], on_end: Callable[[], Awaitable[None]] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._courier = courier(self._loop)
        self._items: collections.deque[object] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._cancel, self._on_end = cancel, on_end
        self._thread: Future[None] | None = None
        self._ending: asyncio.Future[None] | None = None
        self._direct = False  # the loop reads the sequence itself (sink, submitted)
        self._sequence_ended = asyncio.Event()

    def start(self, thread: Future[None]) -> None:
        self._thread = thread

    def put(self, item: object) -> None:
        """From the request thread: a chunk, the exception that ended the generation, or END."""
        self._loop.call_soon_threadsafe(self._arrive, item)

    def sink(self, first: list[Chunk], convert: Callable[[Any], list[Chunk]]) -> Callable[[Any], None]:
        """For a sequence the loop reads itself: what its scheduler's thread hands each text piece, its Finished or
        an error to. `first` goes out ahead of the first piece's chunks; `convert` makes a piece's chunks, on the
        loop (one that fails stops the sequence, and the reader gets the error)."""

        first = list(first)

        def arrive(item: object) -> None:
            left_scheduler = isinstance(item, (Finished, BaseException))
            failed = False
            try:
                try:
                    chunks = [] if isinstance(item, BaseException) else convert(item)
                except Exception as exc:  # the scheduler drops it at its next step; its Finished comes then
                    item, chunks, failed = exc, [], True
                for chunk in [*first, *chunks]:
                    self._arrive(chunk)
                first.clear()
                if isinstance(item, BaseException):
                    self._arrive(item)
            finally:  # however the above ended, the end is not lost: it gives the place back
                if left_scheduler:
                    self._sequence_ended.set()
                if isinstance(item, (Finished, BaseException)):
                    self._arrive(END)
                if failed:  # last: whatever a failing cancel raises, the reader has the error and the end
                    self._cancel()

        return functools.partial(self._courier.hand, arrive)

    def submitted(self) -> None:
        """From the request thread, once the scheduler has the sequence whose sink this feed made: the place is given
        back only after that sequence's last item has come (it leaves its slot at the step after a cancel)."""
        self._direct = True

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
        # anyio (a streaming response's task group) cancels again and again, and a plain asyncio cancel (a deadline's
        # timer) would pass into the end itself: the place would never be given back, or be given back while the
        # thread still runs. The end runs to its end whatever befalls its waiter, who is cancelled after it.
        cancelled = False
        with anyio.CancelScope(shield=True):
            while not self._ending.done():
                try:
                    await asyncio.shield(self._ending)
                except asyncio.CancelledError:
                    cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        self._ending.result()

    async def _end(self) -> None:
        """Once, however it ends: wait for the thread to let go (one still queued never runs) and for a sequence the
        loop reads itself to leave the scheduler, then give the place back."""
        thread = self._thread
        if thread is not None and not thread.cancel():
            await asyncio.gather(asyncio.wrap_future(thread), return_exceptions=True)
        if self._direct:  # read by `thread`'s end: it set it before letting go
            await self._sequence_ended.wait()
        if self._on_end is not None:
            await self._on_end()
