"""Run one completion (chat or text) on a model: admit, generate, answer whole or as events, record metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

from jinja2 import TemplateError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..http.auth import cache_owner
from ..http.errors import ApiError
from ..models.engine import CHAT_FORMAT_REFUSED, Chunk, Engine, StreamCall
from ..models.errors import Refused
from ..models.feed import Feed
from ..models.generation import Generation, TokenStats
from ..models.manager import ModelManager
from ..ops.metrics import Metrics
from .responses import Envelope, Reply, completion_body, stream_event, usage_chunk
from .streaming import DONE, ClientGone, EventStream, error_event, event, unless_disconnected

usage_log = logging.getLogger("cortex.usage")

CLIENT_CLOSED_REQUEST = 499  # nginx's code; nobody reads it, but logs and metrics do


class Dialect(Protocol):
    """The API a request came in: what it watches in the chunks, and how its whole answer, its events and an
    error after the headers look."""

    def watch(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]: ...

    async def body(self, job: Job, reply: Reply, stats: TokenStats) -> dict[str, Any]: ...

    def events(self, job: Job, chunks: AsyncIterator[Chunk], stats: TokenStats) -> AsyncIterator[bytes]: ...

    def error_event(self, error: ApiError) -> bytes: ...


class OpenAI:
    """OpenAI's chat and text completions: a chunk per event, the usage chunk when asked, then [DONE]."""

    def watch(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        return chunks

    async def body(self, job: Job, reply: Reply, stats: TokenStats) -> dict[str, Any]:
        return completion_body(job.envelope, reply, stats)

    async def events(self, job: Job, chunks: AsyncIterator[Chunk], stats: TokenStats) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            yield stream_event(job.envelope, chunk, job.include_usage)
        if job.include_usage:
            yield event(usage_chunk(job.envelope, stats))
        yield DONE

    def error_event(self, error: ApiError) -> bytes:
        return error_event(error)


@dataclass
class Job:
    """A validated request, ready to run."""

    envelope: Envelope
    start: StreamCall
    stream: bool
    include_usage: bool
    prompt_param: str  # names the parameter in a "prompt too long" error
    cache_key: str | None = None  # the request's prompt_cache_key
    dialect: Dialect = field(default_factory=OpenAI)


async def respond(request: Request, manager: ModelManager, job: Job) -> Response:
    model = manager.model(job.envelope.model)
    if model.pooled:
        kind, route = ("a reranking model (rerank: true)", "/v1/rerank") if model.rerank else (
            "an embedding model (embeddings: true)", "/v1/embeddings")  # fmt: skip
        raise ApiError(
            400,
            f"Model `{model.id}` is {kind}: use {route}.",
            param="model",
            code="model_not_supported",
        )
    timeout_s = manager.limits.request_timeout_s
    generation = Generation(deadline=time.monotonic() + timeout_s, owner=cache_owner(request.scope, job.cache_key))
    lease = Lease(manager.metrics, model.id, generation.stats)
    feed: Feed | None = None
    try:
        engine = await unless_disconnected(request, lease.acquire(manager), timeout_s)
        feed = engine.stream(job.start, generation, on_end=lease.release)
        chunks = job.dialect.watch(_guarded(feed, job))
        if job.stream:
            first = await unless_disconnected(request, anext(chunks, None), _left(generation))
            return EventStream(_events(job, generation, timeout_s, first, chunks), on_close=feed.aclose)
        reply = await unless_disconnected(request, _collect(chunks), _left(generation))
        await feed.aclose()
        if generation.timed_out:
            raise _timeout(timeout_s)
        return JSONResponse(await job.dialect.body(job, reply, generation.stats))
    except ClientGone:
        await _end(feed, lease)
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    except BaseException:
        await _end(feed, lease)
        raise


async def _end(feed: Feed | None, lease: Lease) -> None:
    """The generation stopped (its thread let go), then the place given back: both once, whichever way it ended."""
    try:
        if feed is not None:
            await feed.aclose()
    finally:
        await lease.release()


def _left(generation: Generation) -> float:
    return max(generation.deadline - time.monotonic(), 0.001)


def _timeout(timeout_s: float) -> ApiError:
    return ApiError(
        408, f"The request took longer than server.limits.request_timeout_s ({timeout_s:g} s).", code="timeout"
    )


async def _guarded(chunks: AsyncIterator[Chunk], job: Job) -> AsyncIterator[Chunk]:
    """Engine failures caused by the request (too long, bad grammar) become 4xx errors."""
    try:
        async for chunk in chunks:
            yield chunk
    except ValueError as exc:
        message = str(exc)
        if "exceed context window" in message:
            raise ApiError(
                400,
                f"The prompt is too long for this model: {message}.",
                param=job.prompt_param,
                code="context_length_exceeded",
            ) from None
        raise ApiError(400, f"The model could not run this request: {message}", code="invalid_request") from None
    except (TemplateError, TypeError):  # a chat template's raise_exception, or one given what it cannot format
        raise ApiError(400, CHAT_FORMAT_REFUSED, param=job.prompt_param, code="invalid_request") from None
    except RuntimeError as exc:
        raise ApiError(503, f"llama.cpp failed during generation: {exc}", code="engine_error") from None
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def _collect(chunks: AsyncIterator[Chunk]) -> Reply:
    reply = Reply()
    async for chunk in chunks:
        reply.add(chunk)
    return reply


async def _events(
    job: Job, generation: Generation, timeout_s: float, first: Chunk | None, chunks: AsyncIterator[Chunk]
) -> AsyncIterator[bytes]:
    try:
        async for data in job.dialect.events(job, _after(first, chunks, generation, timeout_s), generation.stats):
            yield data
    except ApiError as error:  # headers are sent: the error travels as an event
        yield job.dialect.error_event(error)
    except Refused as refused:
        yield job.dialect.error_event(ApiError.of(refused))
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def _after(
    first: Chunk | None, chunks: AsyncIterator[Chunk], generation: Generation, timeout_s: float
) -> AsyncIterator[Chunk]:
    """The first chunk, then the rest; a generation cut short by the deadline ends in the timeout error."""
    if first is not None:
        yield first
    async for chunk in chunks:
        yield chunk
    if generation.timed_out:
        raise _timeout(timeout_s)


class Lease:
    """A request's place in a model's queue; released once, whichever way the request ends."""

    def __init__(self, metrics: Metrics, model_id: str, stats: TokenStats) -> None:
        self.stack, self.metrics, self.model_id, self.stats = AsyncExitStack(), metrics, model_id, stats
        self._released = False

    async def acquire(self, manager: ModelManager) -> Engine:
        return await self.stack.enter_async_context(manager.use(self.model_id))

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        await self.stack.aclose()
        record(self.metrics, self.model_id, self.stats)


def record(metrics: Metrics, model_id: str, stats: TokenStats) -> None:
    if stats.prompt_tokens == 0 and stats.completion_tokens == 0:
        return  # refused before it began (queue full, model failed): the access line says so
    # One line per generation, in its request's log context: `cortex view logs` finds a model's requests by it.
    usage_log.info("model `%s`: %d prompt tokens, %d generated", model_id, stats.prompt_tokens, stats.completion_tokens)
    if stats.completion_tokens == 0:
        return
    metrics.inc("cortex_tokens_total", stats.prompt_tokens, model=model_id, direction="in")
    metrics.inc("cortex_tokens_total", stats.completion_tokens, model=model_id, direction="out")
    if stats.first_token_s is not None:
        metrics.observe("cortex_time_to_first_token_seconds", stats.first_token_s, model=model_id)
    metrics.observe_all("cortex_token_latency_seconds", stats.gaps_s, model=model_id)
