"""The OpenAI-compatible endpoints under /v1."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..http.errors import ApiError
from ..models.engine import Embedded, Engine, StreamCall, TooManyTokens
from ..models.manager import ModelManager
from .generate import CLIENT_CLOSED_REQUEST, Job, respond
from .grammars import check_grammars, prepare_grammars
from .messages import Anthropic, chat_request, count_request
from .messages_request import CountTokensRequest, MessagesRequest
from .offload import Offload
from .requests import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from .responses import Envelope, embeddings_body, models_body
from .sampling import chat_arguments, check_token_ids, completion_arguments, unsupported
from .streaming import ClientGone, unless_disconnected
from .validation import parse_body

Endpoint = Callable[[Request], Awaitable[Response]]
MAX_EMBEDDING_TOKENS = 300_000  # per request, all inputs together: OpenAI's limit (inputs: requests.py)


def v1_routes(manager: ModelManager, offload: Offload | None = None) -> list[BaseRoute]:
    """`offload`: the app's one pool for grammar work, shared with messages_routes."""
    created = int(time.time())
    offload = offload or Offload()
    return [
        Route("/v1/models", _list_models(manager, created), methods=["GET"]),
        Route("/v1/models/{model_id:path}", _get_model(manager, created), methods=["GET"]),
        Route("/v1/chat/completions", _chat(manager, offload), methods=["POST"]),
        Route("/v1/completions", _completions(manager), methods=["POST"]),
        Route("/v1/embeddings", _embeddings(manager), methods=["POST"]),
    ]


def model_control_routes(manager: ModelManager) -> list[BaseRoute]:
    """Cortex's own: load a model now, or put it to sleep (outside the OpenAI document, which has no such routes)."""
    return [
        Route("/v1/models/{model_id:path}/load", _load(manager), methods=["POST"]),
        Route("/v1/models/{model_id:path}/unload", _unload(manager), methods=["POST"]),
    ]


def messages_routes(manager: ModelManager, offload: Offload) -> list[BaseRoute]:
    """Anthropic's Messages API beside the OpenAI one (not in /openapi.json, which describes OpenAI's)."""
    return [
        Route("/v1/messages", _messages(manager, offload), methods=["POST"]),
        Route("/v1/messages/count_tokens", _count_tokens(manager), methods=["POST"]),
    ]


async def _count(manager: ModelManager, model: str, arguments: dict[str, Any]) -> int:
    """In the model's queue as a request is (the wait covered by the caller's deadline and disconnect check)."""
    async with manager.use(manager.model(model).id) as engine:
        try:
            return await engine.count_chat_tokens(arguments["messages"], arguments.get("tools"))
        except ValueError as exc:
            raise ApiError(400, str(exc), param="messages", code="invalid_request") from None


def _list_models(manager: ModelManager, created: int) -> Endpoint:
    async def list_models(request: Request) -> Response:
        return JSONResponse(models_body(manager.states(), created))

    return list_models


def _get_model(manager: ModelManager, created: int) -> Endpoint:
    async def get_model(request: Request) -> Response:
        model = manager.model(request.path_params["model_id"])
        return JSONResponse(models_body({model.id: manager.states()[model.id]}, created)["data"][0])

    return get_model


def _load(manager: ModelManager) -> Endpoint:
    """Load a model now, as its next request would (in its queue; 429/503 as a request gets them)."""

    async def load(request: Request) -> Response:
        model_id = manager.model(request.path_params["model_id"]).id
        await unless_disconnected(request, manager.wake(model_id), manager.limits.request_timeout_s)
        return JSONResponse({"id": model_id, "state": manager.states()[model_id]})

    return load


def _unload(manager: ModelManager) -> Endpoint:
    """Put a model to sleep now; 409 while requests run on it."""

    async def unload(request: Request) -> Response:
        model_id = manager.model(request.path_params["model_id"]).id
        if not await manager.sleep(model_id, "asked through /v1/models/{id}/unload"):
            raise ApiError(409, f"Model `{model_id}` is serving requests: unload it once they are done.",
                           param="model", code="model_busy")  # fmt: skip
        return JSONResponse({"id": model_id, "state": manager.states()[model_id]})

    return unload


def _chat(manager: ModelManager, offload: Offload) -> Endpoint:
    async def chat_completions(request: Request) -> Response:
        body = await parse_body(request, ChatCompletionRequest)
        arguments = chat_arguments(body, manager.limits)
        start = await chat_start(manager, offload, body.model, arguments)
        envelope = Envelope("chat", body.model)
        job = Job(envelope, start, bool(body.stream), _include_usage(body), "messages", body.prompt_cache_key)
        return await respond(request, manager, job)

    return chat_completions


async def chat_start(manager: ModelManager, offload: Offload, model: str, arguments: dict[str, Any]) -> StreamCall:
    manager.model(model)  # a 404 before any work on the schemas
    grammars = await prepare_grammars(arguments, offload, manager.limits.request_timeout_s)
    arguments.update(grammars.arguments)

    def start(llama: Any) -> Any:
        check_token_ids(arguments, llama.n_vocab())
        check_grammars(llama, grammars)
        return llama.create_chat_completion(**arguments)

    return start


def _messages(manager: ModelManager, offload: Offload) -> Endpoint:
    """Anthropic's Messages API: the chat completion its request means, answered in its shapes (its errors are
    shaped by http/anthropic_errors.py)."""

    async def messages(request: Request) -> Response:
        body = await parse_body(request, MessagesRequest)
        arguments = chat_arguments(chat_request(body), manager.limits)
        arguments |= {"top_k": body.top_k} if body.top_k is not None else {}
        start = await chat_start(manager, offload, body.model, arguments)
        dialect = Anthropic(body.model, tuple(body.stop_sequences or ()))
        job = Job(Envelope("chat", body.model), start, bool(body.stream), False, "messages", dialect=dialect)
        return await respond(request, manager, job)

    return messages


def _count_tokens(manager: ModelManager) -> Endpoint:
    """Anthropic's count_tokens: the prompt's tokens as the model's chat format makes them (its usage.input_tokens)."""

    async def count_tokens(request: Request) -> Response:
        body = await parse_body(request, CountTokensRequest)
        arguments = chat_arguments(count_request(body), manager.limits)  # bounded and checked as a chat
        try:
            counted = _count(manager, body.model, arguments)
            tokens = await unless_disconnected(request, counted, manager.limits.request_timeout_s)
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        return JSONResponse({"input_tokens": tokens})

    return count_tokens


def _completions(manager: ModelManager) -> Endpoint:
    async def completions(request: Request) -> Response:
        body = await parse_body(request, CompletionRequest)
        arguments = completion_arguments(body, manager.limits)

        def start(llama: Any) -> Any:
            check_token_ids(arguments, llama.n_vocab())
            return llama.create_completion(**arguments)

        job = Job(Envelope("text", body.model), start, bool(body.stream), _include_usage(body), "prompt")
        return await respond(request, manager, job)

    return completions


def _include_usage(body: ChatCompletionRequest | CompletionRequest) -> bool:
    return bool(body.stream and body.stream_options and body.stream_options.include_usage)


def _embeddings(manager: ModelManager) -> Endpoint:
    async def embeddings(request: Request) -> Response:
        body = await parse_body(request, EmbeddingRequest)
        model = manager.model(body.model)
        if not model.embeddings:
            raise not_served(manager, model.id, "serve embeddings", "embeddings", "Embedding")
        texts = _texts(body.input)
        timeout_s = manager.limits.request_timeout_s
        async with manager.use(model.id) as engine:  # left only once the engine thread has stopped
            try:
                vectors, tokens = await unless_disconnected(request, _embed(engine, texts), timeout_s)
            except ClientGone:
                return Response(status_code=CLIENT_CLOSED_REQUEST)
        if body.dimensions is not None and vectors and body.dimensions != len(vectors[0]):
            raise unsupported("dimensions", f"model `{model.id}` makes vectors of {len(vectors[0])} dimensions.")
        return JSONResponse(embeddings_body(model.id, vectors, tokens, body.encoding_format or "float"))

    return embeddings


async def _embed(engine: Engine, texts: list[str]) -> Embedded:
    try:
        return await engine.embed(texts, MAX_EMBEDDING_TOKENS)
    except TooManyTokens as exc:
        raise ApiError(400, f"Invalid value for 'input': {exc}.", param="input", code="invalid_value") from None
    except ValueError as exc:
        raise ApiError(400, f"Cannot embed this input: {exc}", param="input", code="invalid_value") from None


def not_served(manager: ModelManager, model_id: str, does: str, flag: str, kind: str) -> ApiError:
    """A model asked for what it is not declared for (`flag: true`): a 400 listing the models that are."""
    able = [model.id for model in manager.models() if getattr(model, flag)]
    return ApiError(400, f"Model `{model_id}` does not {does} (declare it with `{flag}: true`). {kind} models here: "
                    f"{', '.join(able) or 'none'}.", param="model", code="model_not_supported")  # fmt: skip


def _texts(value: str | list[str] | list[int] | list[list[int]]) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not texts or not all(isinstance(text, str) for text in texts):
        raise unsupported("input", "send a string or a non-empty list of strings (token ids are not supported).")
    if any(text == "" for text in texts):
        raise ApiError(
            400, "Invalid value for 'input': empty strings cannot be embedded.", param="input", code="invalid_value"
        )
    return [text for text in texts if isinstance(text, str)]
