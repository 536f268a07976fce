"""Server-sent events, and noticing a client that went away (streaming or not)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..http.errors import ApiError

T = TypeVar("T")
DONE = b"data: [DONE]\n\n"
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # one encoder, not one an event


class ClientGone(Exception):
    """The client disconnected; nobody is left to answer."""


def event(body: dict[str, Any], name: str | None = None) -> bytes:
    """One server-sent event; `name`: its `event:` line (Anthropic's events have one, OpenAI's do not)."""
    data = b"data: " + _encode(body).encode("utf-8") + b"\n\n"
    return f"event: {name}\n".encode() + data if name else data


def error_event(error: ApiError) -> bytes:
    return event(
        {
            "error": {
                "message": error.message,
                "type": "server_error" if error.status >= 500 else "invalid_request_error",
                "param": error.param,
                "code": error.code,
            }
        }
    )


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T], timeout_s: float) -> T:
    """Await `work`, cancelling it when the client disconnects (ClientGone) or time runs out (408)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnect(request.receive))
    try:
        done, _ = await asyncio.wait({task, watcher}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if watcher in done:
        raise ClientGone()
    raise ApiError(
        408, f"The request took longer than server.limits.request_timeout_s ({timeout_s:g} s).", code="timeout"
    )


class Eagerly:
    """`source` read to its end by a task of its own, whatever its reader does: for a watch that stops the generation
    (a stop sequence met), which must act as the model writes, not as a slow client reads. Held in memory meanwhile:
    at most what the generation makes."""

    def __init__(self, source: AsyncIterator[T]) -> None:
        self._items: asyncio.Queue[object] = asyncio.Queue()
        self._task = asyncio.ensure_future(self._take(source))

    async def _take(self, source: AsyncIterator[T]) -> None:
        try:
            async for item in source:
                self._items.put_nowait(item)
            self._items.put_nowait(_END)
        except Exception as exc:  # the source's own error: the reader gets it after what came before
            self._items.put_nowait(exc)
        finally:
            await source.aclose()  # type: ignore[attr-defined]

    def __aiter__(self) -> Eagerly:
        return self

    async def __anext__(self) -> Any:
        item = await self._items.get()
        if item is _END:
            self._items.put_nowait(_END)  # the end stays the end
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


_END = object()


class EventStream(StreamingResponse):
    """SSE response that stops its generator as soon as the client goes away, then runs `on_close` once.

    Starlette only watches for a disconnect below ASGI 2.4; here it is always watched, so a client
    that leaves while its request waits in the queue frees its place at once.
    """

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]]) -> None:
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._content, self._on_close = content, on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream_then_stop() -> None:
                    await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream_then_stop)
                await _until_disconnect(receive)
                group.cancel_scope.cancel()
        except OSError:
            pass  # the transport broke mid-send: same as a disconnect
        finally:
            await self._content.aclose()  # type: ignore[attr-defined]
            await self._on_close()
