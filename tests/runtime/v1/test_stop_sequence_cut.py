"""Anthropic's stop sequences are matched on the reader's side of the feed, so that side is read as the model
writes (Eagerly), not as the client reads: at a match the generation stops then, however late the client comes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from menlo_cortex.runtime.v1.messages import Anthropic
from menlo_cortex.runtime.v1.streaming import Eagerly

pytestmark = pytest.mark.timeout(30)


class Source:
    """Chat chunks of the given texts, as the feed gives them; records how far it was read and whether it was closed."""

    def __init__(self, texts: list[str]) -> None:
        self.texts, self.taken, self.closed = texts, 0, False

    def __aiter__(self) -> Source:
        return self

    async def __anext__(self) -> dict[str, Any]:
        await asyncio.sleep(0)
        if self.taken == len(self.texts):
            raise StopAsyncIteration
        self.taken += 1
        return {"choices": [{"delta": {"content": self.texts[self.taken - 1]}, "finish_reason": None}]}

    async def aclose(self) -> None:
        self.closed = True


async def texts(chunks: AsyncIterator[dict[str, Any]]) -> list[str]:
    return [chunk["choices"][0]["delta"].get("content", "") async for chunk in chunks]


def test_a_stop_sequence_closes_the_generation_before_the_client_reads_anything() -> None:
    async def main() -> tuple[int, bool, list[str], str | None]:
        source = Source(["one, ", "two, ", "three", ", four, ", "five"] + ["more"] * 100)
        anthropic = Anthropic("gemma", stop_sequences=("three",))
        watched = anthropic.watch(source)
        await asyncio.sleep(0.05)  # the client has read nothing yet
        taken, closed = source.taken, source.closed
        return taken, closed, await texts(watched), anthropic.stopped_by

    taken, closed, read, stopped_by = asyncio.run(main())
    assert (taken, closed) == (3, True)  # read up to the match, then the generation was stopped
    assert "".join(read) == "one, two, "
    assert stopped_by == "three"


def test_without_stop_sequences_the_chunks_pass_as_they_are() -> None:
    source = Source(["a", "b"])
    assert Anthropic("gemma").watch(source) is source


def test_eagerly_keeps_order_errors_and_the_end() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise ValueError("broken")

    async def main() -> list[int]:
        eager = Eagerly(failing())
        await asyncio.sleep(0.01)
        got = [await anext(eager), await anext(eager)]
        with pytest.raises(ValueError, match="broken"):
            await anext(eager)
        await eager.aclose()
        return got

    assert asyncio.run(main()) == [1, 2]
