"""A stream whose chunks are its text pieces one for one (a text completion, a plain chat completion) is read by the
event loop straight from the scheduler's thread: the same chunks as through a request thread, which ends as soon as
the sequence is handed over. Anything else (a handler's own generator) keeps its request thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.runtime.models.engine import Engine
from menlo_cortex.runtime.models.feed import Feed
from menlo_cortex.runtime.models.generation import Generation

from .test_batching import engine_for, with_engine

pytestmark = pytest.mark.timeout(300)
Start = Callable[[Any], Iterator[dict[str, Any]]]
MESSAGES = [{"role": "user", "content": "Count from one to five."}]


def text(**kw: Any) -> Start:
    return lambda llama: llama.create_completion("The capital of France is", temperature=0, stream=True, **kw)


def chat(**kw: Any) -> Start:
    return lambda llama: llama.create_chat_completion(messages=MESSAGES, temperature=0, stream=True, **kw)


def through_a_thread(start: Start) -> Start:
    """The same call, its chunks passed on by a generator of the caller's own: no longer recognisable."""
    return lambda llama: (chunk for chunk in start(llama))


def shape(chunk: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in chunk.items() if key not in ("id", "created")}


async def read(engine: Engine, start: Start) -> list[dict[str, Any]]:
    chunks = [chunk async for chunk in engine.stream(start, Generation(deadline=time.monotonic() + 120))]
    return [shape(chunk) for chunk in chunks]


async def held(engine: Engine, start: Start) -> bool:
    """Whether the request thread still runs while the generation does (its third chunk)."""
    feed: Feed = engine.stream(start, Generation(deadline=time.monotonic() + 120))
    for _ in range(3):
        await anext(feed)
    await asyncio.sleep(0.3)
    running = feed._thread is not None and not feed._thread.done()
    await feed.aclose()
    return running


@pytest.mark.parametrize(
    "start",
    [text(max_tokens=40), text(max_tokens=40, echo=True), text(max_tokens=40, stop=["."]), chat(max_tokens=40)],
    ids=["text", "echo", "stop", "chat"],
)
def test_the_loop_reads_the_sequence_itself_with_the_same_chunks(test_model_path: Path, start: Start) -> None:
    async def body(engine: Engine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await read(engine, start), await read(engine, through_a_thread(start))

    direct, threaded = with_engine(engine_for(test_model_path, 2), body)
    assert direct == threaded
    assert len(direct) > 3
    assert direct[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_only_a_recognised_stream_lets_its_request_thread_go(test_model_path: Path) -> None:
    async def body(engine: Engine) -> list[bool]:
        starts = [text(max_tokens=400), chat(max_tokens=400), through_a_thread(chat(max_tokens=400))]
        return [await held(engine, start) for start in starts]

    assert with_engine(engine_for(test_model_path, 2), body) == [False, False, True]


def test_a_direct_stream_closed_early_has_left_the_scheduler_when_the_close_returns(test_model_path: Path) -> None:
    async def body(engine: Engine) -> tuple[int, int]:
        generation = Generation(deadline=time.monotonic() + 120)
        feed = engine.stream(text(max_tokens=400), generation)
        for _ in range(3):
            await anext(feed)
        await feed.aclose()
        closed_at = generation.stats.completion_tokens
        await asyncio.sleep(0.5)
        return closed_at, generation.stats.completion_tokens

    closed_at, later = with_engine(engine_for(test_model_path, 1), body)
    assert closed_at < 100
    assert later == closed_at  # no step ran it after the close returned
