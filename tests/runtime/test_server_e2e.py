"""The real `cortex start` process with the real model, through the official `openai` client and raw HTTP."""

from __future__ import annotations

import asyncio
import platform
import re
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.cpu_variants import host_cpu_flags, is_best_fit
from tests.runtime.cortex_server import MODEL_ID, CortexServer

pytestmark = pytest.mark.slow
PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"'
SAMPLE = re.compile(rf"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{{{LABEL}(,{LABEL})*\}})? \S+$")


@pytest.fixture
def client(shared_server: CortexServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{shared_server.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def test_chat_completion_with_the_sync_client(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL_ID, messages=PROMPT, max_tokens=8)
    assert re.fullmatch(r"[0-9a-f]{32}", raw.headers["x-request-id"])
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert 0 < completion.usage.completion_tokens <= 8


def test_text_completion_and_model_list(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=MODEL_ID, prompt="The sky is", max_tokens=8)
    assert completion.choices[0].text
    assert [model.id for model in client.models.list()] == [MODEL_ID]


def test_streaming_chat_completion(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=12, stream=True)
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert len(chunks) > 2
    assert text
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_async_client(shared_server: CortexServer) -> None:
    results = asyncio.run(three_chats(shared_server.base_url))
    assert all(result.choices[0].message.content for result in results)


async def three_chats(base_url: str) -> list[Any]:
    async with openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0) as client:
        return await asyncio.gather(
            *(client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=6) for _ in range(3))
        )


def test_unknown_model_is_a_404_naming_the_served_ones(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nope", messages=PROMPT, max_tokens=4)
    assert MODEL_ID in str(caught.value)


def wait_for_output(server: CortexServer, needle: str, deadline_s: float = 10.0) -> list[str]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        lines = [line for line in server.output().splitlines() if needle in line]
        if lines:
            return lines
        time.sleep(0.05)
    pytest.fail(f"{needle!r} never appeared in the server output:\n{server.output()}")


def test_a_client_request_id_is_echoed_and_logged(shared_server: CortexServer) -> None:
    with shared_server.client() as http:
        response = http.get("/v1/models", headers={"x-request-id": "e2e-trace-42"})
    assert response.headers["x-request-id"] == "e2e-trace-42"
    assert any('"GET /v1/models HTTP/1.1" 200' in line for line in wait_for_output(shared_server, "e2e-trace-42"))


def test_metrics_are_prometheus_text_and_count_requests(client: openai.OpenAI, shared_server: CortexServer) -> None:
    client.chat.completions.create(model=MODEL_ID, messages=PROMPT, max_tokens=4)
    with shared_server.client() as http:
        response = http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = [line for line in response.text.splitlines() if line and not line.startswith("#")]
    assert all(SAMPLE.match(line) for line in samples), [line for line in samples if not SAMPLE.match(line)]
    counted = [line for line in samples if line.startswith('cortex_requests_total{route="/v1/chat/completions"')]
    assert any('status="200"' in line and float(line.split()[-1]) >= 1 for line in counted)
    assert f'cortex_model_loaded{{model="{MODEL_ID}"}} 1' in samples
    assert any(line.startswith("cortex_time_to_first_token_seconds_count") for line in samples)


def test_health_and_ready_answer_while_a_generation_runs(client: openai.OpenAI, shared_server: CortexServer) -> None:
    """Causal, not timed: every route answers while the same generation is still producing tokens."""
    stream = client.completions.create(model=MODEL_ID, prompt="Count: 1, 2, 3,", max_tokens=400, stream=True)
    chunks = iter(stream)
    next(chunks)  # the generation is running now
    with shared_server.client() as http:
        statuses = [http.get(path).status_code for path in ("/health", "/ready", "/metrics", "/v1/models")]
    still_generating = next(chunks).choices[0].finish_reason is None
    stream.close()
    assert statuses == [200, 200, 200, 200]
    assert still_generating, "the routes answered only once the generation had ended"


def test_health_names_the_cpu_variant_in_use(shared_server: CortexServer) -> None:
    """Chosen at start by its self-test: the best this CPU runs (none failed here)."""
    with shared_server.client() as http:
        backends = http.get("/health").json()["backends"]
    assert "CPU" in backends["names"]
    assert backends["cpu_variants_failed"] == []
    if platform.machine() == "x86_64":
        assert is_best_fit(backends["cpu_variant"], host_cpu_flags()), backends


def test_bodies_over_the_limit_are_413_in_openai_shape(shared_server: CortexServer) -> None:
    big = b'{"model": "gemma", "prompt": "' + b"x" * 1_100_000 + b'"}'
    json_type = {"content-type": "application/json"}
    chunks = iter([big[i : i + 65536] for i in range(0, len(big), 65536)])
    with shared_server.client() as http:
        declared = http.post("/v1/completions", content=big, headers=json_type)
        chunked = http.post("/v1/completions", content=chunks, headers=json_type)
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        assert response.headers["x-request-id"]


def test_a_foreign_host_header_is_refused_on_a_loopback_bind(shared_server: CortexServer) -> None:
    with shared_server.client() as http:
        refused = http.get("/v1/models", headers={"host": "rebound.example:39281"})
        allowed = http.get("/v1/models", headers={"host": f"localhost:{shared_server.port}"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "host_not_allowed"
    assert allowed.status_code == 200


def test_docs_page_and_openapi_are_served_by_the_runtime(shared_server: CortexServer) -> None:
    with shared_server.client() as http:
        page, script = http.get("/docs"), http.get("/docs/docs.js")
        document = http.get("/openapi.json").json()
    assert page.status_code == script.status_code == 200
    assert {"/v1/chat/completions", "/v1/models", "/health", "/ready", "/metrics"} <= set(document["paths"])


def test_server_survives_a_garbage_request(shared_server: CortexServer) -> None:
    with shared_server.client() as http:
        json_type = {"content-type": "application/json"}
        bad = http.post("/v1/chat/completions", content=b"\xff\xfe not json", headers=json_type)
        assert 400 <= bad.status_code < 500
        assert http.get("/health").status_code == 200
