"""The scheduler's thread holds the wake-ups it owes the event loop until it lets go of the GIL: just before each
decode, or before it waits for work. Woken earlier, the loop's thread only waited for the GIL and was woken again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from llama_cpp.llama_grammar import LlamaGrammar
from menlo_cortex.runtime.models.batching import wake_ups
from menlo_cortex.runtime.models.batching.sampling import SamplerChain
from menlo_cortex.runtime.models.engine import Engine
from menlo_cortex.runtime.models.generation import Generation

from .test_batching import engine_for, with_engine

pytestmark = pytest.mark.timeout(120)
STORY = "Write a long story about a lighthouse keeper who finds a map in a bottle. Once upon a time,"


def test_a_thread_that_holds_nothing_wakes_at_once() -> None:
    called: list[str] = []
    wake_ups.wake(lambda: called.append("now"))
    assert called == ["now"]


def test_held_wake_ups_go_at_send_in_order_and_the_rest_when_the_block_ends() -> None:
    called: list[int] = []
    with wake_ups.held():
        wake_ups.wake(lambda: called.append(1))
        wake_ups.wake(lambda: called.append(2))
        assert called == []
        wake_ups.send()
        assert called == [1, 2]
        wake_ups.wake(lambda: called.append(3))
    assert called == [1, 2, 3]
    wake_ups.wake(lambda: called.append(4))  # the block is over: at once again
    assert called == [1, 2, 3, 4]


def test_a_block_within_another_sends_its_own_and_leaves_the_outer_ones_held() -> None:
    called: list[str] = []
    with wake_ups.held():
        wake_ups.wake(lambda: called.append("outer"))
        with wake_ups.held():
            wake_ups.wake(lambda: called.append("inner"))
        assert called == ["inner"]
    assert called == ["inner", "outer"]


def test_an_interrupted_send_leaves_the_rest_held() -> None:
    called: list[str] = []

    def interrupted() -> None:
        raise KeyboardInterrupt

    with wake_ups.held():
        wake_ups.wake(interrupted)
        wake_ups.wake(lambda: called.append("rest"))
        with contextlib.suppress(KeyboardInterrupt):
            wake_ups.send()
        assert called == []  # held still: the block's end sends it
    assert called == ["rest"]


def test_an_interrupted_send_at_the_blocks_end_still_sends_the_rest() -> None:
    called: list[str] = []

    def interrupted() -> None:
        raise KeyboardInterrupt

    def hold_both() -> None:
        with wake_ups.held():
            wake_ups.wake(interrupted)
            wake_ups.wake(lambda: called.append("rest"))

    with pytest.raises(KeyboardInterrupt):
        hold_both()
    assert called == ["rest"]


def test_one_thread_holding_does_not_hold_another_threads_wake_ups() -> None:
    called: list[str] = []
    with wake_ups.held():
        other = threading.Thread(target=wake_ups.wake, args=(lambda: called.append("other"),))
        other.start()
        other.join()
        assert called == ["other"]


def test_a_failing_wake_up_is_logged_and_the_others_still_go(caplog: pytest.LogCaptureFixture) -> None:
    called: list[str] = []

    def fails() -> None:
        raise OSError("no")

    with caplog.at_level(logging.ERROR, "cortex.batching"), wake_ups.held():
        wake_ups.wake(fails)
        wake_ups.wake(lambda: called.append("after"))
        wake_ups.send()
    assert called == ["after"]
    assert "a wake-up failed" in caplog.text


class Recorded:
    """One of the scheduler's parts, its call `name` noted as `event` (the others pass through)."""

    def __init__(self, part: Any, name: str, event: str, events: list[str]) -> None:
        self._part, self._name, self._event, self._events = part, name, event, events

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._part, name)
        if name != self._name:
            return found

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self._events.append(self._event)
            return found(*args, **kwargs)

        return recorded


def test_the_scheduler_wakes_the_loop_only_as_it_lets_go_of_the_gil(test_model_path: Path) -> None:
    """Each wake-up of the loop by the scheduler's thread comes right before a decode or its wait for work, never
    between a token's sampling and the planning of the next step."""
    events: list[str] = []

    async def body(engine: Engine) -> int:
        loop = asyncio.get_running_loop()
        scheduler = engine._scheduler
        assert scheduler is not None
        threadsafe, plan = loop.call_soon_threadsafe, scheduler._plan_step

        def woken(callback: Any, *args: Any) -> Any:
            if threading.current_thread() is scheduler._thread:
                events.append("wake")
            return threadsafe(callback, *args)

        def planned() -> Any:
            events.append("plan")
            return plan()

        loop.call_soon_threadsafe = woken  # type: ignore[method-assign,assignment]
        scheduler._plan_step = planned  # type: ignore[method-assign]
        scheduler._lib = Recorded(scheduler._lib, "llama_decode", "decode", events)  # type: ignore[assignment]
        scheduler._inbox = Recorded(scheduler._inbox, "get", "wait", events)  # type: ignore[assignment]

        def start(llama: Any) -> Any:
            return llama.create_completion("The capital of France is", max_tokens=12, temperature=0, stream=True)

        generation = Generation(deadline=time.monotonic() + 60)
        return len([chunk async for chunk in engine.stream(start, generation)])

    chunks = with_engine(engine_for(test_model_path, 2), body)
    assert chunks > 3
    # The stream was read by the loop from the scheduler's thread; how many wake-ups carried it depends on how fast
    # the loop takes each (on a loaded machine several steps' pieces share one).
    assert events.count("wake") >= 1
    for index, event in enumerate(events):
        if event == "wake":
            following = next(later for later in events[index + 1 :] if later != "wake")
            assert following in ("decode", "wait"), events


def test_no_wake_up_waits_behind_a_costly_sampling(test_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A grammar's parse, or a full sampling chain, runs in C without the GIL for up to milliseconds: the tokens
    sampled before it in the same step (another client's) go to the loop first, not after it."""
    held_at_costly: list[int] = []
    sample = SamplerChain.sample

    def noted(chain: SamplerChain, *args: Any) -> int:
        if chain.costly:
            held_at_costly.append(len(getattr(wake_ups._held, "pending", None) or []))
        return sample(chain, *args)

    monkeypatch.setattr(SamplerChain, "sample", noted)

    async def body(engine: Engine) -> int:
        free = Generation(deadline=time.monotonic() + 60)

        def greedy(llama: Any) -> Any:
            return llama.create_completion(STORY, max_tokens=400, temperature=0, stream=True)

        def with_grammar(llama: Any) -> Any:
            grammar = LlamaGrammar.from_string('root ::= [a-z ]+ "."')
            return llama.create_completion("A word:", max_tokens=24, temperature=0, stream=True, grammar=grammar)

        def drawn(llama: Any) -> Any:
            return llama.create_completion("A word:", max_tokens=24, temperature=0.8, stream=True, seed=1)

        async def read(start: Any, generation: Generation) -> None:
            async for _ in engine.stream(start, generation):
                pass

        first = asyncio.ensure_future(read(greedy, free))  # the older sequence: sampled first in each step
        while free.stats.completion_tokens < 2:
            await asyncio.sleep(0.01)
        for start in (with_grammar, drawn):
            await read(start, Generation(deadline=time.monotonic() + 60))
        running = free.stats.completion_tokens < 400  # beside the costly ones all along
        free.cancel.set()
        await first
        return running

    assert with_engine(engine_for(test_model_path, 2), body), "the greedy stream ended before the costly ones"
    assert len(held_at_costly) >= 10  # both costly streams were sampled
    assert set(held_at_costly) == {0}
