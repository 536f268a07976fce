"""Bad requests get a 4xx in OpenAI's error shape, naming the problem; the server stays up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from menlo_cortex.runtime.v1.openapi import openapi_document

from tests.runtime.harness import Served, make_config, model_entry, serve, unused_port

HUGE_STRING = {"type": "string", "maxLength": 10**9}  # would spell out a gigabyte grammar
HUGE_PATTERN = {"type": "string", "pattern": "^a{1000000000}$"}
CHAT = {"model": "gemma", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def served(test_model_path: Path) -> Iterator[Served]:
    config = make_config([model_entry(test_model_path, context_size=128)])
    with serve(config, unused_port()) as running:
        yield running


def post(served: Served, body: Any, path: str = "/v1/chat/completions") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{served.url}{path}", content=content, timeout=60)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (b"{", None, "not valid JSON"),
        (b'{"model": "gemma", "messages": [{"role": "user", "content": "\xff"}]}', None, "not valid UTF-8"),
        (b"[1, 2]", None, "JSON object"),
        ({**CHAT, "max_tokens": -1}, "max_tokens", "greater than or equal to 1"),
        ({**CHAT, "max_tokens": "8"}, "max_tokens", "integer"),
        ({**CHAT, "temperature": 3}, "temperature", "less than or equal to 2"),
        ({**CHAT, "messages": "hi"}, "messages", "array"),
        ({**CHAT, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "'system'"),
        ({"messages": CHAT["messages"]}, "model", "Missing required parameter"),
        ({**CHAT, "frobnicate": True}, "frobnicate", "Unrecognized request argument"),
        ({**CHAT, "messages": [{"role": "user", "content": "x", "mood": "sad"}]}, "messages[0].mood", "Unrecognized"),
        ({**CHAT, "n": 3}, "n", "one choice"),
        ({**CHAT, "logprobs": True}, "logprobs", "not returned"),
        ({**CHAT, "tool_choice": "required"}, "tool_choice", "required"),
        ({**CHAT, "moderation": {"model": "omni-moderation-latest"}}, "moderation", "no moderation"),
        ({**CHAT, "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({**CHAT, "logit_bias": {"word": 1}}, "logit_bias", "token ids"),
    ],
)
def test_bad_chat_requests_are_400_naming_the_problem(served: Served, body: Any, param: str | None, words: str) -> None:
    error = error_of(post(served, body), 400)
    assert error["param"] == param
    assert words in error["message"]
    assert error["type"] == "invalid_request_error"


def test_image_content_is_unsupported(served: Served) -> None:
    part = {"type": "image_url", "image_url": {"url": "http://x/y.png"}}
    error = error_of(post(served, {**CHAT, "messages": [{"role": "user", "content": [part]}]}), 400)
    assert error["param"] == "messages[0].content[0]"


def test_text_content_parts_are_accepted(served: Served) -> None:
    parts = [{"type": "text", "text": "Say"}, {"type": "text", "text": "hello"}]
    assert post(served, {**CHAT, "messages": [{"role": "developer", "content": parts}]}).status_code == 200


def test_unknown_model_is_404_naming_the_models(served: Served) -> None:
    error = error_of(post(served, {**CHAT, "model": "gpt-4"}), 404)
    assert "gpt-4" in error["message"]
    assert "gemma" in error["message"]
    assert error["param"] == "model"


def test_prompt_longer_than_the_context_is_400(served: Served) -> None:
    long = {**CHAT, "messages": [{"role": "user", "content": "word " * 400}]}
    error = error_of(post(served, long), 400)
    assert error["code"] == "context_length_exceeded"
    assert "exceed context window" in error["message"]
    stream_error = error_of(post(served, {**long, "stream": True}), 400)
    assert stream_error["code"] == "context_length_exceeded"
    completion = post(served, {"model": "gemma", "prompt": "word " * 400}, "/v1/completions")
    assert error_of(completion, 400)["param"] == "prompt"


def test_embeddings_need_an_embedding_model(served: Served) -> None:
    error = error_of(post(served, {"model": "gemma", "input": "hi"}, "/v1/embeddings"), 400)
    assert "embeddings: true" in error["message"]


def test_several_prompts_are_unsupported(served: Served) -> None:
    error = error_of(post(served, {"model": "gemma", "prompt": ["a", "b"]}, "/v1/completions"), 400)
    assert error["param"] == "prompt"


def test_server_still_answers_after_bad_input(served: Served) -> None:
    for body in (b"\x00\x01", b'{"model": 1}', b"null", b'{"model": "gemma", "messages": [{}]}'):
        assert 400 <= post(served, body).status_code < 500
    assert post(served, CHAT).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/completions", {"model": "gemma", "prompt": [[]]}, "prompt"),
        ("/v1/completions", {"model": "gemma", "prompt": [99999999]}, "prompt"),
        ("/v1/completions", {"model": "gemma", "prompt": [-5]}, "prompt"),
        ("/v1/chat/completions", {**CHAT, "logit_bias": {"-1": 5}}, "logit_bias"),
        (
            "/v1/chat/completions",
            {
                **CHAT,
                "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "frob"}}},
            },
            "response_format.json_schema.schema",
        ),
        (
            "/v1/chat/completions",
            {**CHAT, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": HUGE_STRING}}},
            "response_format.json_schema.schema",
        ),
        (
            "/v1/chat/completions",
            {**CHAT, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": HUGE_PATTERN}}},
            "response_format.json_schema.schema",
        ),
        (
            "/v1/chat/completions",
            {**CHAT, "tools": [{"type": "function", "function": {"name": "f", "parameters": HUGE_STRING}}]},
            "tools",
        ),
    ],
)
def test_values_the_engine_cannot_take_are_400(served: Served, path: str, body: Any, param: str) -> None:
    assert error_of(post(served, body, path), 400)["param"] == param


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "assistant", "content": None}, {"role": "user", "content": "x"}],
        [{"role": "user"}],
        [
            {
                "role": "assistant",
                "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            }
        ],
        [{"role": "tool", "content": "42", "tool_call_id": "1"}],
    ],
)
def test_messages_without_text_content_are_answered(served: Served, messages: list[dict[str, Any]]) -> None:
    assert post(served, {**CHAT, "messages": messages}).status_code == 200


def test_a_forced_function_without_parameters_is_called(served: Served) -> None:
    body = {
        **CHAT,
        "max_tokens": 8,
        "tools": [{"type": "function", "function": {"name": "now"}}],
        "tool_choice": {"type": "function", "function": {"name": "now"}},
    }
    message = post(served, body).json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "now"


# Values the server refuses, and values beside them it accepts: the OpenAPI document says the same, so that a
# client (or a code generator, or a fuzzer) that trusts it never sends a refused request.
COMPLETION = {"model": "gemma", "prompt": "Hi", "max_tokens": 4}
RESPONSE = {"model": "gemma", "input": "Hi", "max_output_tokens": 4}
NAMED = {"type": "function", "function": {"name": "now"}}
REFUSED = [
    ("/v1/chat/completions", {**CHAT, "tool_choice": NAMED}),
    ("/v1/chat/completions", {**CHAT, "tools": [{"type": "function"}]}),
    ("/v1/chat/completions", {**CHAT, "tools": [NAMED], "functions": [{"name": "now"}]}),
    ("/v1/responses", {**RESPONSE, "tools": [{"type": "web_search"}]}),
    ("/v1/responses", {**RESPONSE, "background": True}),
    ("/v1/responses", {**RESPONSE, "truncation": "auto"}),
    ("/v1/responses", {**RESPONSE, "reasoning": {"effort": "high"}}),
    ("/v1/responses", {**RESPONSE, "reasoning": {"summary": "auto"}}),
    ("/v1/responses", {**RESPONSE, "include": ["message.output_text.logprobs"]}),
    ("/v1/responses", {**RESPONSE, "tool_choice": {"type": "function", "name": "now"}}),
    ("/v1/responses", {**RESPONSE, "tool_choice": "required"}),
    ("/v1/responses", {**RESPONSE, "input": [{"role": "user", "content": [{"type": "input_image"}]}]}),
    ("/v1/responses", {**RESPONSE, "input": [{"type": "reasoning", "summary": []}]}),
    ("/v1/responses", {**RESPONSE, "input": []}),
    ("/v1/chat/completions", {**CHAT, "n": 2}),
    ("/v1/chat/completions", {**CHAT, "logprobs": True}),
    ("/v1/chat/completions", {**CHAT, "top_logprobs": 3}),
    ("/v1/chat/completions", {**CHAT, "modalities": ["text", "audio"]}),
    ("/v1/chat/completions", {**CHAT, "audio": {"voice": "alloy"}}),
    ("/v1/chat/completions", {**CHAT, "moderation": {}}),
    ("/v1/chat/completions", {**CHAT, "web_search_options": {}}),
    ("/v1/chat/completions", {**CHAT, "tool_choice": "required"}),
    ("/v1/chat/completions", {**CHAT, "tools": [{"type": "custom"}]}),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": [{"type": "file"}]}]}),
    ("/v1/completions", {**COMPLETION, "logprobs": 2}),
    ("/v1/completions", {**COMPLETION, "best_of": 3}),
    ("/v1/completions", {**COMPLETION, "prompt": ["a", "b"]}),
    ("/v1/completions", {**COMPLETION, "prompt": []}),
    ("/v1/completions", {**COMPLETION, "prompt": [[]]}),
    ("/v1/embeddings", {"model": "gemma", "input": ""}),
    ("/v1/embeddings", {"model": "gemma", "input": []}),
    ("/v1/embeddings", {"model": "gemma", "input": [1, 2]}),
]
ACCEPTED = [
    ("/v1/chat/completions", {**CHAT, "tool_choice": NAMED, "tools": [NAMED]}),
    (
        "/v1/responses",
        {
            **RESPONSE,
            "reasoning": {"effort": "none"},
            "truncation": "disabled",
            "background": False,
            "include": ["reasoning.encrypted_content"],
            "tool_choice": "none",
            "store": True,
        },
    ),
    ("/v1/responses", {**RESPONSE, "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}]}),
    (
        "/v1/responses",
        {
            **RESPONSE,
            "tool_choice": {"type": "function", "name": "now"},
            "tools": [{"type": "function", "name": "now"}],
            "max_output_tokens": 16,
        },
    ),
    ("/v1/chat/completions", {**CHAT, "n": 1, "logprobs": False, "top_logprobs": 0, "modalities": ["text"]}),
    ("/v1/chat/completions", {**CHAT, "audio": None, "moderation": None, "tool_choice": "none"}),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "tool"}]}),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": [{"type": "refusal"}]}]}),
    ("/v1/completions", {**COMPLETION, "logprobs": 0, "best_of": 1}),
    ("/v1/completions", {**COMPLETION, "prompt": ["one"]}),
    ("/v1/completions", {**COMPLETION, "prompt": [[2, 3]]}),
]


def document_accepts(path: str, body: dict[str, Any]) -> bool:
    document = openapi_document()
    operation = document["paths"][path]["post"]
    schema = {**operation["requestBody"]["content"]["application/json"]["schema"], "components": document["components"]}
    return bool(jsonschema.Draft202012Validator(schema).is_valid(body))


@pytest.mark.parametrize(("path", "body"), REFUSED)
def test_what_the_server_refuses_the_document_refuses(served: Served, path: str, body: dict[str, Any]) -> None:
    assert 400 <= post(served, body, path).status_code < 500
    assert not document_accepts(path, body)


@pytest.mark.parametrize(("path", "body"), ACCEPTED)
def test_what_the_document_accepts_the_server_answers(served: Served, path: str, body: dict[str, Any]) -> None:
    assert document_accepts(path, body)
    assert post(served, body, path).status_code == 200
