"""A client that stops reading a streamed answer (its connection's send buffer full: every `send` waits) must not
hold its model's place: the place is given back when the generation ends, and the others are served."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from menlo_cortex.runtime.models.manager import ModelManager
from menlo_cortex.runtime.ops.metrics import standard_metrics

from tests.runtime.harness import build_app, locate_source, make_config, model_entry

CHAT = {"model": "gemma", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def test_a_stalled_reader_gives_the_models_place_back_when_its_generation_ends(test_model_path: Path) -> None:
    config = make_config([model_entry(test_model_path)], parallel=1, queue_size=0)
    manager = ModelManager(config, metrics=standard_metrics(), locate=locate_source)
    app = build_app(manager)

    async def main() -> list[int]:
        await manager.start()
        try:
            stalled = asyncio.ensure_future(_stalled_stream(app))
            await asyncio.sleep(0)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                statuses = [(await client.post("/v1/chat/completions", json=CHAT)).status_code]
                while statuses[-1] == 429:  # the stalled stream's generation is running: its place is taken
                    await asyncio.sleep(0.05)
                    statuses.append((await client.post("/v1/chat/completions", json=CHAT)).status_code)
            assert not stalled.done()  # its client still has not read: the answer waits in memory
            stalled.cancel()
            await asyncio.gather(stalled, return_exceptions=True)
            return statuses
        finally:
            await manager.close()

    statuses = asyncio.run(asyncio.wait_for(main(), 60))
    assert statuses[-1] == 200
    assert set(statuses[:-1]) <= {429}


async def _stalled_stream(app: Any) -> None:
    """A streamed completion whose client takes the response's head, then never reads again."""
    body = json.dumps({"model": "gemma", "prompt": "Count: 1, 2, 3,", "stream": True, "max_tokens": 48}).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/completions", "raw_path": b"/v1/completions", "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 5000), "server": ("test", 80),
    }  # fmt: skip
    sent_body = False
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()  # no disconnect: the socket stays open
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            await never.wait()  # the send buffer is full and stays full

    await app(scope, receive, send)
