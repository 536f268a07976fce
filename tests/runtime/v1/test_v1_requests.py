"""The request models declare every parameter the official openai client can send, and nothing else."""

from __future__ import annotations

import typing

import pytest
from menlo_cortex.runtime.v1.requests import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from openai.types import completion_create_params, embedding_create_params
from openai.types.chat import completion_create_params as chat_create_params
from pydantic import BaseModel

STREAMING_SWITCH = {"stream"}  # split into two TypedDicts by the client, one field for us


@pytest.mark.parametrize(
    ("client_params", "model"),
    [
        (chat_create_params.CompletionCreateParamsBase, ChatCompletionRequest),
        (completion_create_params.CompletionCreateParamsBase, CompletionRequest),
        (embedding_create_params.EmbeddingCreateParams, EmbeddingRequest),
    ],
)
def test_every_documented_parameter_is_declared(client_params: type, model: type[BaseModel]) -> None:
    documented = set(typing.get_type_hints(client_params))
    assert documented - set(model.model_fields) == set()
    assert set(model.model_fields) - documented <= STREAMING_SWITCH


def test_literal_values_cover_the_clients() -> None:
    hints = typing.get_type_hints(chat_create_params.CompletionCreateParamsBase)
    for field in ("reasoning_effort", "service_tier", "verbosity", "prompt_cache_retention"):
        client_values = {value for arg in typing.get_args(hints[field]) for value in typing.get_args(arg)}
        ours = ChatCompletionRequest.model_json_schema()["properties"][field]
        our_values = {value for option in ours["anyOf"] for value in option.get("enum", [])}
        assert client_values - {None} <= our_values, field
