"""Random request bodies on the real model: never a 5xx, always OpenAI's error shape, the server stays up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from menlo_cortex.runtime.v1.requests import ChatCompletionRequest, CompletionRequest

from tests.runtime.harness import Served, make_config, model_entry, serve, unused_port

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
CHAT_BASE = {"model": "gemma", "messages": [{"role": "user", "content": "Hi"}]}
TEXT_BASE = {"model": "gemma", "prompt": "Hi"}


def mutations(base: dict[str, Any], fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid body with some documented fields set to arbitrary JSON, and now and then an unknown one."""
    known = st.dictionaries(st.sampled_from(fields), JSON, max_size=3)
    return known.map(lambda changes: {**base, **changes})


@pytest.fixture(scope="module")
def served(test_model_path: Path) -> Iterator[Served]:
    with serve(make_config([model_entry(test_model_path, context_size=256)], max_tokens=1), unused_port()) as running:
        yield running


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=60) as made:
        yield made


def check(client: httpx.Client, path: str, body: dict[str, Any]) -> None:
    response = client.post(path, content=json.dumps(body).encode())
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=mutations(CHAT_BASE, [*ChatCompletionRequest.model_fields, "unknown_field"]))
def test_chat_bodies_never_fail_the_server(client: httpx.Client, body: dict[str, Any]) -> None:
    check(client, "/v1/chat/completions", body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=mutations(TEXT_BASE, [*CompletionRequest.model_fields, "unknown_field"]))
def test_completion_bodies_never_fail_the_server(client: httpx.Client, body: dict[str, Any]) -> None:
    check(client, "/v1/completions", body)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(JSON, min_size=1, max_size=3).map(lambda items: {**CHAT_BASE, "messages": items}))
def test_arbitrary_messages_never_fail_the_server(client: httpx.Client, body: dict[str, Any]) -> None:
    check(client, "/v1/chat/completions", body)
