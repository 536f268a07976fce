"""Queueing, 429, cancellation on disconnect, and models that never wait for each other (real uvicorn, real model)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator
from pathlib import Path

import httpx

from tests.runtime.harness import Served, make_config, model_entry, serve, unused_port, wait_for

LONG = 400  # tokens: 5 s or more of generation, never reached because each test stops it
# Generation is measured in tokens, not seconds: the 2 shared cores may be slow, but a cancelled run stops early.
FEW = LONG // 4
FREED_S = 10  # a llama.cpp call in progress (prompt evaluation) cannot be interrupted; slow on a loaded machine


def chat_body(model: str, max_tokens: int, stream: bool) -> dict[str, object]:
    prompt = [{"role": "user", "content": "Write a very long story about a dragon."}]
    return {
        "model": model,
        "messages": prompt,
        "max_tokens": max_tokens,
        "stream": stream,
        "temperature": 0,
        "stop": [],
    }


async def stream_lines(client: httpx.AsyncClient, body: dict[str, object]) -> AsyncGenerator[str, None]:
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                yield line.removeprefix("data: ")


def test_full_queue_is_429_and_a_disconnect_frees_the_place(test_model_path: Path) -> None:
    config = make_config([model_entry(test_model_path)], parallel=2, queue_size=0, max_tokens=LONG)
    with serve(config, unused_port()) as served:
        asyncio.run(_full_then_freed(served))


async def _full_then_freed(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
        lines = stream_lines(client, chat_body("gemma", LONG, stream=True))
        other = stream_lines(client, chat_body("gemma", LONG, stream=True))
        await anext(lines)  # both slots are generating
        await anext(other)
        refused = await client.post("/v1/chat/completions", json=chat_body("gemma", 4, stream=False))
        assert refused.status_code == 429
        assert refused.headers["retry-after"].isdigit()
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert "2 at once" in refused.json()["error"]["message"]
        await lines.aclose()  # the clients go away mid-stream
        await other.aclose()
        await asyncio.to_thread(wait_for, lambda: served.manager.queue_depth("gemma") == 0, FREED_S, "the place freed")
        answered = await client.post("/v1/chat/completions", json=chat_body("gemma", 4, stream=False))
        assert answered.status_code == 200
    assert served.metrics.value("cortex_tokens_total", model="gemma", direction="out") < FEW


def test_a_non_streaming_client_that_leaves_cancels_its_generation(test_model_path: Path) -> None:
    config = make_config([model_entry(test_model_path)], queue_size=0, max_tokens=LONG)
    with serve(config, unused_port()) as served:
        asyncio.run(_leave_non_streaming(served))
        # The cancelled generation stopped between tokens, long before LONG tokens.
        assert served.metrics.value("cortex_tokens_total", model="gemma", direction="out") < FEW


async def _leave_non_streaming(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
        request = asyncio.ensure_future(client.post("/v1/chat/completions", json=chat_body("gemma", LONG, False)))
        await asyncio.to_thread(wait_for, lambda: served.manager.queue_depth("gemma") == 1, 10, "the request")
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)
        await asyncio.to_thread(wait_for, lambda: served.manager.queue_depth("gemma") == 0, FREED_S, "the place freed")
        answered = await client.post("/v1/chat/completions", json=chat_body("gemma", 4, stream=False))
        assert answered.status_code == 200


def test_two_models_do_not_wait_for_each_other(test_model_path: Path) -> None:
    models = [model_entry(test_model_path, "first"), model_entry(test_model_path, "second")]
    with serve(make_config(models, max_tokens=LONG), unused_port()) as served:
        asyncio.run(_two_models(served))


async def _two_models(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
        lines = stream_lines(client, chat_body("first", LONG, stream=True))
        await anext(lines)
        started = time.monotonic()
        listed = await client.get("/v1/models")  # never waits for a generation
        assert listed.status_code == 200
        assert time.monotonic() - started < 1.0  # a blocked event loop would wait for the generation
        other = await client.post("/v1/chat/completions", json=chat_body("second", 4, stream=False))
        assert other.status_code == 200
        # The first model is still generating: its stream has not finished.
        assert json.loads(await anext(lines))["choices"][0]["finish_reason"] is None
        assert served.manager.queue_depth("first") == 1
        await lines.aclose()


def test_request_timeout_is_enforced(test_model_path: Path) -> None:
    config = make_config([model_entry(test_model_path)], request_timeout_s=1.0, max_tokens=LONG)
    with serve(config, unused_port()) as served:
        whole = httpx.post(f"{served.url}/v1/chat/completions", json=chat_body("gemma", LONG, False), timeout=60)
        assert whole.status_code == 408, whole.text
        assert "request_timeout_s" in whole.json()["error"]["message"]
        streamed = httpx.post(f"{served.url}/v1/chat/completions", json=chat_body("gemma", LONG, True), timeout=60)
        if streamed.status_code == 408:  # the deadline came before the first chunk (a loaded machine): no stream
            assert streamed.json()["error"]["code"] == "timeout"
        else:  # it came mid-stream: the stream's last event is the error
            events = [line.removeprefix("data: ") for line in streamed.text.splitlines() if line.startswith("data: ")]
            assert json.loads(events[-1])["error"]["code"] == "timeout", streamed.text
        wait_for(lambda: served.manager.queue_depth("gemma") == 0, FREED_S, "the places freed")
        # Both stopped at their deadline (1 s each), long before LONG tokens each.
        assert served.metrics.value("cortex_tokens_total", model="gemma", direction="out") < LONG


def test_a_waiting_client_that_leaves_frees_its_place_at_once(test_model_path: Path) -> None:
    config = make_config([model_entry(test_model_path)], parallel=1, queue_size=1, max_tokens=LONG)
    with serve(config, unused_port()) as served:
        asyncio.run(_leave_while_waiting(served))


async def _leave_while_waiting(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
        running = stream_lines(client, chat_body("gemma", LONG, stream=True))
        await anext(running)
        waiting = asyncio.ensure_future(client.post("/v1/chat/completions", json=chat_body("gemma", 4, True)))
        await asyncio.to_thread(wait_for, lambda: served.manager.queue_depth("gemma") == 2, 10, "the waiting one")
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await asyncio.to_thread(wait_for, lambda: served.manager.queue_depth("gemma") == 1, 3, "the place freed")
        assert json.loads(await anext(running))["choices"][0]["finish_reason"] is None  # the first still runs
        await running.aclose()
