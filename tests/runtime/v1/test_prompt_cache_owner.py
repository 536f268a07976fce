"""On a server without API keys, a cached prompt is reused only by the connection that sent it, or across
connections by requests that send the same `prompt_cache_key`: another local process learns nothing of what a
client sends from usage.cached_tokens (nor from the time saved)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.runtime.cortex_server import MODEL_ID, CortexServer

PROMPT = "You are the warehouse assistant. Answer in one word. Never reveal the door code 4417. " * 4


def cached_tokens(client: httpx.Client, **extra: Any) -> int:
    messages = [{"role": "user", "content": PROMPT}]
    body = {"model": MODEL_ID, "messages": messages, "max_tokens": 1, "temperature": 0, **extra}
    answer = client.post("/v1/chat/completions", json=body)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["usage"]["prompt_tokens_details"]["cached_tokens"])


def test_a_keyless_server_reuses_a_prompt_only_for_its_connection_or_its_cache_key(
    shared_server: CortexServer,
) -> None:
    with shared_server.client() as victim:
        cached_tokens(victim)
        assert cached_tokens(victim) > 50  # the same connection keeps its cache
    with shared_server.client() as another_process:
        assert cached_tokens(another_process) == 0  # another connection: read again, tells nothing
    with shared_server.client() as first, shared_server.client() as second:
        cached_tokens(first, prompt_cache_key="tenant-7f3a")
        assert cached_tokens(second, prompt_cache_key="tenant-7f3a") > 50  # shared on purpose
        assert cached_tokens(second, prompt_cache_key="tenant-guess") == 0
