"""The Feed between a generation's request thread and the event loop: order, the end, errors, and the place given
back once (when the generation ends, read or not, or when the reader closes it first)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from menlo_cortex.runtime.models.batching import wake_ups
from menlo_cortex.runtime.models.batching.sequence import Finished
from menlo_cortex.runtime.models.feed import END, Chunk, Courier, Feed, courier

pytestmark = pytest.mark.timeout(30)


class Ends:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1


def test_chunks_arrive_in_order_then_the_end_stays_the_end() -> None:
    async def main() -> tuple[list[Chunk], list[Chunk], int]:
        ends, pool = Ends(), ThreadPoolExecutor(1)
        feed = Feed(lambda: None, ends)

        def produce() -> None:
            for index in range(50):
                feed.put({"n": index})
            feed.put(END)

        feed.start(pool.submit(produce))
        first = [chunk async for chunk in feed]
        again = [chunk async for chunk in feed]
        await feed.aclose()
        pool.shutdown()
        return first, again, ends.count

    first, again, ends = asyncio.run(main())
    assert first == [{"n": index} for index in range(50)]
    assert again == []
    assert ends == 1


def test_an_error_reaches_the_reader_after_what_came_before() -> None:
    async def main() -> list[Chunk]:
        pool = ThreadPoolExecutor(1)
        feed = Feed(lambda: None)

        def produce() -> None:
            feed.put({"n": 1})
            feed.put(ValueError("too long"))
            feed.put(END)

        feed.start(pool.submit(produce))
        seen = [await anext(feed)]
        with pytest.raises(ValueError, match="too long"):
            await anext(feed)
        await feed.aclose()
        pool.shutdown()
        return seen

    assert asyncio.run(main()) == [{"n": 1}]


def test_the_place_is_given_back_when_the_generation_ends_though_nobody_reads() -> None:
    async def main() -> int:
        ends, pool = Ends(), ThreadPoolExecutor(1)
        feed = Feed(lambda: None, ends)

        def produce() -> None:
            for index in range(3):
                feed.put({"n": index})
            feed.put(END)

        feed.start(pool.submit(produce))
        for _ in range(200):
            if ends.count:
                break
            await asyncio.sleep(0.01)
        pool.shutdown()
        return ends.count

    assert asyncio.run(main()) == 1


def test_closing_early_stops_the_generation_waits_for_its_thread_and_ends_once() -> None:
    async def main() -> tuple[bool, int]:
        ends, pool, stop, finished = Ends(), ThreadPoolExecutor(1), threading.Event(), threading.Event()
        feed = Feed(stop.set, ends)

        def produce() -> None:
            while not stop.wait(0.01):
                feed.put({"n": 0})
            finished.set()
            feed.put(END)

        feed.start(pool.submit(produce))
        await anext(feed)
        await feed.aclose()
        thread_done = finished.is_set()  # aclose returned only after the thread let go
        await asyncio.sleep(0.05)  # the END that arrives after the close starts no second end
        await feed.aclose()
        pool.shutdown()
        return thread_done, ends.count

    assert asyncio.run(main()) == (True, 1)


def test_a_close_cancelled_while_it_waits_still_ends_the_feed_once_and_ends_after_the_thread() -> None:
    """A deadline's timer cancels the reader while its close waits for the thread: the end must not be cancelled
    with it (the place was never given back, and the next close raised CancelledError: a 500)."""

    async def main() -> tuple[bool, bool, int, bool]:
        ends, pool, stop, finished = Ends(), ThreadPoolExecutor(1), threading.Event(), threading.Event()
        feed = Feed(stop.set, ends)

        def produce() -> None:
            stop.wait()
            time.sleep(0.2)  # the thread lets go well after the close began
            finished.set()
            feed.put(END)

        feed.start(pool.submit(produce))
        closing = asyncio.ensure_future(feed.aclose())
        await asyncio.sleep(0.05)
        closing.cancel()
        cancelled = isinstance((await asyncio.gather(closing, return_exceptions=True))[0], asyncio.CancelledError)
        after_thread = finished.is_set()  # the cancelled close returned only once the thread let go
        await feed.aclose()  # the request's own cleanup: no CancelledError
        pool.shutdown()
        return cancelled, after_thread, ends.count, feed._ending is not None and not feed._ending.cancelled()

    assert asyncio.run(main()) == (True, True, 1, True)


def test_a_generation_still_queued_never_runs_once_closed() -> None:
    async def main() -> tuple[bool, int]:
        ends, pool, gate = Ends(), ThreadPoolExecutor(1), threading.Event()
        pool.submit(gate.wait)  # the only thread is busy
        ran = threading.Event()
        feed = Feed(lambda: None, ends)
        feed.start(pool.submit(ran.set))
        await feed.aclose()
        gate.set()
        pool.shutdown()
        return ran.is_set(), ends.count

    assert asyncio.run(main()) == (False, 1)


def test_a_closed_loop_is_no_error_for_the_thread_that_hands_it_pieces() -> None:
    """The scheduler's thread must go on for the other sequences when one's reader (its loop) is gone."""

    async def make() -> Feed:
        return Feed(lambda: None)

    feed = asyncio.run(make())  # the loop is closed once run() returns
    feed.sink([], lambda piece: [{"text": piece}])("piece")  # no RuntimeError


def test_a_steps_pieces_for_all_streams_reach_the_loop_in_one_wake_up_each_stream_in_order() -> None:
    """The scheduler hands a step's pieces for every stream one after another; the loop is woken once for them
    (when it has not already taken the first: then twice)."""

    async def main() -> tuple[list[list[Chunk]], int]:
        loop = asyncio.get_running_loop()
        wake_ups = 0
        threadsafe = loop.call_soon_threadsafe

        def counted(callback: Any, *args: Any) -> Any:
            nonlocal wake_ups
            wake_ups += getattr(callback, "__self__", None) is courier(loop)
            return threadsafe(callback, *args)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign,assignment]
        feeds = [Feed(lambda: None) for _ in range(3)]
        hands = [feed.sink([], lambda item: [] if isinstance(item, Finished) else [{"text": item}]) for feed in feeds]

        def step(pieces: Sequence[object]) -> None:
            for hand, piece in zip(hands, pieces, strict=True):
                hand(piece)

        for pieces in (["a1", "b1", "c1"], ["a2", "b2", "c2"], [Finished("stop")] * 3):
            step(pieces)  # on the loop's thread, so the loop cannot take the first before the last is handed
            await asyncio.sleep(0)
        read = [[chunk async for chunk in feed] for feed in feeds]
        return read, wake_ups

    read, wake_ups = asyncio.run(main())
    assert read == [[{"text": f"{name}1"}, {"text": f"{name}2"}] for name in "abc"]
    assert wake_ups == 3


def test_an_item_that_fails_on_the_loop_does_not_hold_back_the_others_handed_with_it() -> None:
    """They share a wake-up; each still arrives as if it had its own: the failure is logged, the rest delivered."""

    async def main() -> tuple[list[object], list[str]]:
        loop = asyncio.get_running_loop()
        logged: list[str] = []
        loop.set_exception_handler(lambda _, context: logged.append(str(context["exception"])))
        taken: list[object] = []

        def fails(item: object) -> None:
            raise ValueError(f"cannot take {item}")

        def hands() -> None:
            courier(loop).hand(taken.append, "a")
            courier(loop).hand(fails, "b")
            courier(loop).hand(taken.append, "c")

        await asyncio.to_thread(hands)
        await asyncio.sleep(0)
        return taken, logged

    assert asyncio.run(main()) == (["a", "c"], ["cannot take b"])


def test_a_wake_up_one_scheduler_holds_does_not_hold_back_anothers_items() -> None:
    """Two models' schedulers hand to the same loop's courier: while one holds its wake-up (wake_ups), the other's
    item still asks for one of its own and arrives."""

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        taken: list[object] = []
        holding, release = threading.Event(), threading.Event()

        def first_scheduler() -> None:
            with wake_ups.held():
                courier(loop).hand(taken.append, "held")
                holding.set()
                release.wait(10)

        first = threading.Thread(target=first_scheduler)
        first.start()
        try:
            holding.wait(10)
            await asyncio.to_thread(courier(loop).hand, taken.append, "other")
            for _ in range(100):
                if "other" in taken:
                    break
                await asyncio.sleep(0.01)
            return list(taken)
        finally:
            release.set()
            first.join(10)

    assert "other" in asyncio.run(main())


def test_a_loop_closed_with_items_on_their_way_takes_no_more_and_is_not_kept_alive() -> None:
    async def main() -> tuple[Courier, weakref.ref[asyncio.AbstractEventLoop]]:
        loop = asyncio.get_running_loop()
        return courier(loop), weakref.ref(loop)

    handed, loop = asyncio.run(main())
    for piece in range(3):  # the loop is closed: its wake-up never runs, and nothing piles up
        handed.hand(lambda item: None, piece)
    assert handed._items == []
    gc.collect()
    assert loop() is None


def test_a_loop_closed_with_a_wake_up_pending_is_let_go_once_another_loop_starts() -> None:
    """Its items (and through them its feeds) would keep it alive, though nobody hands it anything more."""

    async def sink() -> Callable[[object], None]:
        return Feed(lambda: None).sink([], lambda item: [{"text": item}])

    async def another() -> None:
        Feed(lambda: None)

    loop = asyncio.new_event_loop()
    hand = loop.run_until_complete(sink())
    hand("a")  # the scheduler's last piece, between the loop's stop and its close: its wake-up never runs
    loop.close()
    first = weakref.ref(loop)
    del loop, hand
    asyncio.run(another())
    gc.collect()
    assert first() is None


def test_a_feed_whose_chunk_cannot_be_queued_still_ends() -> None:
    """An item that left the scheduler gives the place back even when taking it fails half-way."""

    async def main() -> tuple[bool, object, list[str]]:
        def cancel() -> None:
            raise RuntimeError("the scheduler is gone")

        def convert(item: object) -> list[Chunk]:
            raise ValueError("no such field")

        logged: list[str] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, context: logged.append(str(context["exception"])))
        feed = Feed(cancel)
        await asyncio.to_thread(feed.sink([], convert), "a")
        await asyncio.sleep(0)
        with pytest.raises(ValueError, match="no such field"):  # the reader gets the error, then the end
            await anext(feed)
        return [chunk async for chunk in feed] == [], feed._items[-1], logged

    assert asyncio.run(main()) == (True, END, ["the scheduler is gone"])


def scheduler_until_cancelled(
    hand: Callable[[object], None], pieces: list[str], cancelled: threading.Event, events: list[str]
) -> threading.Thread:
    """The scheduler's thread for one sequence: hands its pieces; once cancelled, ends the step in progress, then
    hands its Finished (noted in `events`)."""

    def run() -> None:
        for piece in pieces:
            hand(piece)
        cancelled.wait(10)
        time.sleep(0.2)  # the step in progress
        events.append("finished")
        hand(Finished("cancelled"))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_sequence_read_by_the_loop_keeps_its_place_until_it_leaves_the_scheduler() -> None:
    """Its pieces come from another thread (the scheduler's), the first chunks ahead of them; closed early, the place
    is given back only once the sequence's Finished has come, not when its request thread (long gone) let go."""

    async def main() -> tuple[list[Chunk], list[str]]:
        events: list[str] = []
        pool, stop = ThreadPoolExecutor(1), threading.Event()
        ends = Ends()
        feed = Feed(stop.set, ends)
        hand = feed.sink([{"echo": True}], lambda item: [] if isinstance(item, Finished) else [{"text": item}])
        feed.start(pool.submit(feed.submitted))  # the request thread: submits, then ends at once

        other = scheduler_until_cancelled(hand, ["a", "b"], stop, events)
        chunks = [await anext(feed), await anext(feed)]
        await feed.aclose()
        events.append(f"closed, {ends.count} end")
        other.join()
        pool.shutdown()
        return chunks, events

    chunks, events = asyncio.run(main())
    assert chunks == [{"echo": True}, {"text": "a"}]
    assert events == ["finished", "closed, 1 end"]


def test_a_converter_that_fails_stops_the_sequence_and_the_reader_gets_the_error() -> None:
    async def main() -> tuple[bool, str]:
        stop = threading.Event()
        feed = Feed(stop.set)

        def convert(item: object) -> list[Chunk]:
            raise KeyError("no such field")

        threading.Thread(target=feed.sink([], convert), args=("a",)).start()
        with pytest.raises(KeyError) as failure:
            await anext(feed)
        return stop.is_set(), str(failure.value)

    assert asyncio.run(main()) == (True, "'no such field'")


def test_after_a_converter_fails_the_place_waits_for_the_sequence_to_leave() -> None:
    """The failure cancels the sequence; the scheduler drops it at its next step, and only its Finished ends it."""

    async def main() -> list[str]:
        events: list[str] = []
        stop = threading.Event()
        feed = Feed(stop.set, Ends())

        def convert(item: object) -> list[Chunk]:
            if isinstance(item, Finished):
                return []
            raise KeyError("a piece that does not convert")

        hand = feed.sink([], convert)
        feed.submitted()

        other = scheduler_until_cancelled(hand, ["a"], stop, events)
        with pytest.raises(KeyError, match="does not convert"):
            await anext(feed)
        await feed.aclose()
        events.append("closed")
        other.join()
        return events

    assert asyncio.run(main()) == ["finished", "closed"]
