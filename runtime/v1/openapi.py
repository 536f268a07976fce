"""The OpenAPI 3.1 document of the /v1 endpoints, with request bodies generated from the request models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .requests import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from .response_schemas import SCHEMAS
from .responses_api_request import ResponseRequest

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
    (
        "/v1/responses",
        ResponseRequest,
        "createResponse",
        "A response (or its SSE stream of typed events), kept when stored for previous_response_id.",
        "Response",
    ),
]
STORED = "A stored response of the caller's API key (another key's is not found)."
RESPONSE_ID_PARAMETER = {"name": "response_id", "in": "path", "required": True, "schema": {"type": "string"}}
PAGE_PARAMETERS = [
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
    {"name": "order", "in": "query", "required": False, "schema": {"enum": ["asc", "desc"]}},
    {"name": "after", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "An item id: the page starts after it (an id not in the response: the end)."},
]  # fmt: skip


def openapi_document() -> dict[str, Any]:
    models = [(model, "validation") for _, model, *_ in POSTS]
    _, definitions = models_json_schema(models, ref_template=REF)  # type: ignore[arg-type]
    schemas: dict[str, Any] = {**_supported_only(definitions.get("$defs", {})), **SCHEMAS, "Error": _error_schema()}
    paths: dict[str, Any] = {
        "/v1/models": {"get": _operation("listModels", "The models this server serves.", None, "ModelList")},
        "/v1/models/{model_id}": {"get": _get_model()},
    }
    for path, model, operation_id, summary, answer in POSTS:
        streams = model is not EmbeddingRequest
        paths[path] = {"post": _operation(operation_id, summary, model.__name__, answer, streams=streams)}
    paths["/v1/responses/{response_id}"] = {
        "get": _stored("getResponse", STORED, "Response"),
        "delete": _stored("deleteResponse", "Delete a stored response of the caller's API key.", "ResponseDeleted"),
    }
    paths["/v1/responses/{response_id}/input_items"] = {
        "get": _stored("listInputItems", "The input items a stored response answered.", "ResponseItemList")
    }
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


def _stored(operation_id: str, summary: str, answer: str) -> dict[str, Any]:
    operation = _operation(operation_id, summary, None, answer)
    operation["parameters"] = [RESPONSE_ID_PARAMETER, *(PAGE_PARAMETERS if operation_id == "listInputItems" else [])]
    operation["responses"]["404"] = _error_response("No stored response of this API key has that id.")
    operation["responses"]["503"] = _error_response("Stored responses cannot be read now (the log says why).")
    if operation_id == "listInputItems":
        operation["responses"]["400"] = _error_response("`limit` is not 1 to 100, or `order` not asc or desc.")
    return operation


def _supported_only(definitions: dict[str, Any]) -> dict[str, Any]:
    """The Responses API's unions hold `Unsupported*` members so that what cannot run here is refused by name;
    the document lists only what runs (a request valid against it is never refused)."""
    unsupported = {name for name in definitions if name.startswith("Unsupported")}
    refs = {REF.format(model=name) for name in unsupported}

    def narrowed(node: Any) -> Any:
        if isinstance(node, list):
            return [narrowed(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: narrowed(value) for key, value in node.items()}
        if "oneOf" in node and any(isinstance(m, dict) and m.get("$ref") in refs for m in node["oneOf"]):
            members = [m for m in node.pop("oneOf") if not (isinstance(m, dict) and m.get("$ref") in refs)]
            node["anyOf"] = [m for index, m in enumerate(members) if m not in members[:index]]
        return node

    return {name: narrowed(schema) for name, schema in definitions.items() if name not in unsupported}


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
