"""JSON Schemas of the /v1 response bodies (what responses.py builds), for the OpenAPI document."""

from __future__ import annotations

from typing import Any

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NULLABLE_STRING = {"type": ["string", "null"]}
FINISH_REASON = {"type": ["string", "null"], "enum": ["stop", "length", "tool_calls", "function_call", None]}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


USAGE = _object(
    {"prompt_tokens": INTEGER, "completion_tokens": INTEGER, "total_tokens": INTEGER},
    {"prompt_tokens_details": _object({"cached_tokens": INTEGER})},  # prompt tokens reused from a slot's cache
)
TOOL_CALL = _object(
    {"id": STRING, "type": STRING, "function": _object({"name": STRING, "arguments": STRING})},
)
MESSAGE = _object(
    {"role": {"const": "assistant"}, "content": NULLABLE_STRING},
    {"refusal": NULLABLE_STRING, "tool_calls": {"type": "array", "items": TOOL_CALL}},
)


def _completion(object_name: str, choice: dict[str, Any]) -> dict[str, Any]:
    return _object(
        {
            "id": STRING,
            "object": {"const": object_name},
            "created": INTEGER,
            "model": STRING,
            "choices": {"type": "array", "items": choice},
            "usage": USAGE,
        },
        {"system_fingerprint": NULLABLE_STRING},
    )


CHAT_COMPLETION = _completion(
    "chat.completion",
    _object({"index": INTEGER, "message": MESSAGE, "finish_reason": FINISH_REASON}, {"logprobs": {"type": "null"}}),
)
TEXT_COMPLETION = _completion(
    "text_completion",
    _object({"index": INTEGER, "text": STRING, "finish_reason": FINISH_REASON}, {"logprobs": {"type": "null"}}),
)
EMBEDDINGS = _object(
    {
        "object": {"const": "list"},
        "model": STRING,
        "data": {
            "type": "array",
            "items": _object(
                {
                    "object": {"const": "embedding"},
                    "index": INTEGER,
                    "embedding": {"oneOf": [{"type": "array", "items": {"type": "number"}}, STRING]},
                }
            ),
        },
        "usage": _object({"prompt_tokens": INTEGER, "total_tokens": INTEGER}),
    }
)
MODEL = _object(
    {"id": STRING, "object": {"const": "model"}, "created": INTEGER, "owned_by": STRING},
    {"state": {"enum": ["loading", "ready", "unloaded", "sleeping", "failed"]}},
)
MODEL_LIST = _object({"object": {"const": "list"}, "data": {"type": "array", "items": MODEL}})
# One server-sent event: `data:` carries a JSON chunk, an error object, or the final `[DONE]`.
SERVER_SENT_EVENT = _object({"data": STRING}, {"event": STRING, "id": STRING, "retry": INTEGER})

# The Responses API's bodies (responses_api.py): the fields clients read; what a response echoes of its request
# (tools, text, metadata, ...) is there too, as the request gave it.
OUTPUT_ITEM = _object(
    {"id": STRING, "type": {"enum": ["message", "function_call"]}, "status": STRING},
    {"role": {"const": "assistant"}, "content": {"type": "array", "items": _object({"type": STRING, "text": STRING})},
     "call_id": STRING, "name": STRING, "arguments": STRING},
)  # fmt: skip
RESPONSE_USAGE = _object(
    {"input_tokens": INTEGER, "output_tokens": INTEGER, "total_tokens": INTEGER},
    {"input_tokens_details": _object({"cached_tokens": INTEGER}),
     "output_tokens_details": _object({"reasoning_tokens": INTEGER})},
)  # fmt: skip
RESPONSE = _object(
    {
        "id": STRING,
        "object": {"const": "response"},
        "created_at": INTEGER,
        "status": {"enum": ["completed", "incomplete", "in_progress"]},
        "model": STRING,
        "output": {"type": "array", "items": OUTPUT_ITEM},
        "store": {"type": "boolean"},
    },
    {"usage": {"anyOf": [RESPONSE_USAGE, {"type": "null"}]}, "previous_response_id": NULLABLE_STRING,
     "instructions": NULLABLE_STRING},
)  # fmt: skip
RESPONSE_ITEM_LIST = _object(
    {"object": {"const": "list"}, "data": {"type": "array", "items": _object({"id": STRING, "type": STRING})},
     "first_id": NULLABLE_STRING, "last_id": NULLABLE_STRING, "has_more": {"type": "boolean"}},
)  # fmt: skip
RESPONSE_DELETED = _object({"id": STRING, "object": {"const": "response"}, "deleted": {"const": True}})

SCHEMAS = {
    "Response": RESPONSE,
    "ResponseItemList": RESPONSE_ITEM_LIST,
    "ResponseDeleted": RESPONSE_DELETED,
    "ChatCompletion": CHAT_COMPLETION,
    "TextCompletion": TEXT_COMPLETION,
    "EmbeddingList": EMBEDDINGS,
    "Model": MODEL,
    "ModelList": MODEL_LIST,
    "ServerSentEvent": SERVER_SENT_EVENT,
}
