"""The OpenAPI 3.1 document of the /v1 endpoints, with request bodies generated from the request models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .requests import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from .response_schemas import SCHEMAS

REF = "#/components/schemas/{model}"
ERROR_STATUSES = {
    "400": "The request is invalid: malformed JSON, a wrong type, an unknown field, or an unsupported value.",
    "404": "The model does not exist; the message lists the models that do.",
    "408": "The request took longer than server.limits.request_timeout_s.",
    "413": "The body is larger than server.limits.max_body_bytes.",
    "415": "The body is not sent as `Content-Type: application/json`.",
    "429": "The model's queue is full; retry after the Retry-After header's seconds.",
    "503": "The model cannot be loaded (missing, not GGUF, failed to load) or every resident model is busy.",
}
# path, request model, operationId, summary, response schema
POSTS: list[tuple[str, type[BaseModel], str, str, str]] = [
    (
        "/v1/chat/completions",
        ChatCompletionRequest,
        "createChatCompletion",
        "A chat completion (or its SSE stream).",
        "ChatCompletion",
    ),
    (
        "/v1/completions",
        CompletionRequest,
        "createCompletion",
        "A text completion (or its SSE stream).",
        "TextCompletion",
    ),
    (
        "/v1/embeddings",
        EmbeddingRequest,
        "createEmbedding",
        "Embedding vectors, for models with embeddings: true.",
        "EmbeddingList",
    ),
]


def openapi_document() -> dict[str, Any]:
    models = [(model, "validation") for _, model, *_ in POSTS]
    _, definitions = models_json_schema(models, ref_template=REF)  # type: ignore[arg-type]
    schemas: dict[str, Any] = {**definitions.get("$defs", {}), **SCHEMAS, "Error": _error_schema()}
    paths: dict[str, Any] = {
        "/v1/models": {"get": _operation("listModels", "The models this server serves.", None, "ModelList")},
        "/v1/models/{model_id}": {"get": _get_model()},
    }
    for path, model, operation_id, summary, answer in POSTS:
        streams = model is not EmbeddingRequest
        paths[path] = {"post": _operation(operation_id, summary, model.__name__, answer, streams=streams)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Cortex OpenAI-compatible API", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _operation(
    operation_id: str, summary: str, body: str | None, answer: str, *, streams: bool = False
) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": {"$ref": REF.format(model=answer)}}}
    if streams:
        content["text/event-stream"] = {"schema": {"$ref": REF.format(model="ServerSentEvent")}}
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "responses": {"200": {"description": summary, "content": content}, **_errors(body is not None)},
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=body)}}},
        }
    return operation


def _get_model() -> dict[str, Any]:
    operation = _operation("retrieveModel", "One model this server serves.", None, "Model")
    operation["parameters"] = [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    operation["responses"]["404"] = _error_response(ERROR_STATUSES["404"])
    return operation


def _errors(has_body: bool) -> dict[str, Any]:
    if not has_body:
        return {}
    return {status: _error_response(description) for status, description in ERROR_STATUSES.items()}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
    }


def _error_schema() -> dict[str, Any]:
    nullable = {"type": ["string", "null"]}
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": nullable,
                    "code": nullable,
                },
            }
        },
    }
