"""Requests built to freeze or exhaust the server, sent to the real `cortex start` process with the real model:
each is refused naming the limit, or bounded, and /health keeps answering while they are in flight."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

from tests.runtime.cortex_server import MODEL_BLOCK, MODEL_ID, CortexServer, launch

pytestmark = pytest.mark.slow
EMBED_ID = "gemma-embed"
MODELS = (
    MODEL_BLOCK + f"  - id: {EMBED_ID}\n    preset: gemma3-270m-q4km\n    context_size: 1024\n    embeddings: true\n"
)
RESPONSE_SCHEMA = "response_format.json_schema.schema"
CHAT: dict[str, Any] = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
# The old bound check's regex was quadratic in a run of spaces after "{": about ten minutes on the event loop.
SLOW_PATTERN = {"type": "string", "pattern": "{" + " " * 100_000}
# Every bound is allowed (4096), but 60 of them spell out a grammar of megabytes from 4 KB of schema.
EXACTLY_4096 = {"type": "string", "minLength": 4096, "maxLength": 4096}
WIDE = {"type": "object", "properties": {f"p{i}": EXACTLY_4096 for i in range(60)}, "required": ["p0"]}
# 900 optional properties: the converter's work grows with their square (seconds of CPU for 26 KB).
MANY_OPTIONAL = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(900)}}
# Below the token cap, and far more than any machine embeds in the 30 s the tests wait.
LONG_EMBEDDING = {"model": EMBED_ID, "input": ["a " * 130] * 2000}
LEFT_WITHIN_S = 30.0
HEALTH_S = 1.0


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, cortex_command: list[str], test_data_dir: Path
) -> Iterator[CortexServer]:
    running = launch(tmp_path_factory.mktemp("hostile"), cortex_command, test_data_dir, models=MODELS)
    try:
        running.wait_ready()
        yield running
    finally:
        running.terminate()


def with_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {**CHAT, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}


def with_tool(schema: dict[str, Any]) -> dict[str, Any]:
    forced = {"type": "function", "function": {"name": "f"}}
    return {
        **CHAT,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
        "tool_choice": forced,
    }


def post(
    server: CortexServer, body: dict[str, Any], path: str = "/v1/chat/completions", timeout: float = 60
) -> httpx.Response:
    with server.client(timeout=timeout) as http:
        return http.post(path, json=body)


def error_of(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def poll_health(server: CortexServer, seconds: float, until: Callable[[], bool] = lambda: False) -> list[float]:
    """How long each /health took, polled for `seconds` or `until` it holds (at least once); a client timeout
    of HEALTH_S fails the test at once."""
    waits: list[float] = []
    deadline = time.monotonic() + seconds
    with server.client(timeout=HEALTH_S) as http:
        while time.monotonic() < deadline and not (waits and until()):
            started = time.monotonic()
            assert http.get("/health").status_code == 200
            waits.append(time.monotonic() - started)
            time.sleep(0.05)  # a poll interval, not synchronization
    return waits


@pytest.mark.parametrize(
    ("body", "param"), [(with_schema(SLOW_PATTERN), RESPONSE_SCHEMA), (with_tool(SLOW_PATTERN), "tools")]
)
def test_a_long_pattern_is_refused_naming_the_limit(server: CortexServer, body: dict[str, Any], param: str) -> None:
    error = error_of(post(server, body, timeout=30))
    assert error["param"] == param
    assert "`pattern` may have 1024 characters" in error["message"]


def nested_alternatives(depth: int, width: int = 8) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    for level in range(depth):
        inner = {"$ref": f"#/$defs/l{level + 1}"} if level + 1 < depth else {"type": "string"}
        defs[f"l{level}"] = {"anyOf": [{"type": "array", "prefixItems": [inner]} for _ in range(width)]}
    return {"$defs": defs, "$ref": "#/$defs/l0"}


@pytest.mark.parametrize(
    ("schema", "limit"),
    [
        (WIDE, "its grammar would exceed 1048576 characters"),
        (MANY_OPTIONAL, "more than 25000 rules"),
        ({"type": "string", "pattern": "^a{1_000_000_000}$"}, "between 0 and 4096"),  # int() reads "1_000"
        ({"type": "string", "pattern": "^a{-4096,4096}$"}, "between 0 and 4096"),  # 8192 copies
        ({"enum": [f"v{i}" for i in range(1025)]}, "`enum` may list 1024 alternatives"),  # each token checked 1025x
        ({"anyOf": [{"const": i} for i in range(1025)]}, "`anyOf` may list 1024 alternatives"),
        # nested alternatives that all begin alike: 8**4 alive after four `[` (8**5: seconds a token for everyone)
        (nested_alternatives(4), "may keep more than 1024 alive at once"),
    ],
)
def test_grammar_amplification_is_refused_naming_the_limit(
    server: CortexServer, schema: dict[str, Any], limit: str
) -> None:
    for body, param in ((with_schema(schema), RESPONSE_SCHEMA), (with_tool(schema), "tools")):
        error = error_of(post(server, body))
        assert error["param"] == param
        assert limit in error["message"]


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "string", "maxLength": 4096}, "`maxLength` - `minLength` may be at most 1000"),
        ({"type": "array", "items": {"type": "integer"}, "maxItems": 2000}, "`maxItems` - `minItems` may be at most"),
        ({"type": "string", "pattern": "^[0-9]{0,1500}$"}, "m - n in {n,m} may be at most 1000"),
        ({"type": "string", "pattern": "^\\d+$"}, "do not support this escape"),
        ({"type": "string", "pattern": "^a**$"}, "a quantifier must follow an item"),
        ({"type": "string", "pattern": "^[]]$"}, "must be escaped"),  # the converter loops forever
        ({"type": "string", "pattern": "^a}$"}, "must be escaped"),
        ({"enum": []}, "matches nothing"),
        ({"enum": ['say "hi"']}, 'a `"` inside a property name'),
    ],
)
def test_schemas_that_would_crash_or_hang_the_server_are_refused(
    server: CortexServer, schema: dict[str, Any], words: str
) -> None:
    """llama.cpp refuses these grammars and llama-cpp-python then dereferences a null pointer, or the converter
    never returns: before, one request took the whole server down."""
    for body, param in ((with_schema(schema), RESPONSE_SCHEMA), (with_tool(schema), "tools")):
        error = error_of(post(server, body, timeout=30))
        assert error["param"] == param
        assert words in error["message"]
    assert post(server, CHAT).status_code == 200
    assert server.process.poll() is None


def test_a_tool_that_is_not_forced_is_not_held_to_grammar_rules(server: CortexServer) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "string", "pattern": "^\\d+$"}}}
    assert post(server, {**CHAT, "tools": [tool]}).status_code == 200


def test_a_schema_that_cannot_be_converted_is_refused_without_echoing_it(server: CortexServer) -> None:
    error = error_of(post(server, with_schema({"type": "frob-7f3a9c"})))
    assert error["message"] == (
        "Invalid value for 'response_format.json_schema.schema': "
        "it cannot be turned into a grammar: unsupported JSON Schema."
    )


def test_a_schema_within_the_limits_still_constrains_the_output(server: CortexServer) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    response = post(server, {**with_schema(schema), "max_tokens": 3})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].startswith("{")


def test_embedding_inputs_are_capped_at_2048(server: CortexServer) -> None:
    error = error_of(post(server, {"model": EMBED_ID, "input": ["hi"] * 2049}, "/v1/embeddings"))
    assert error["param"] == "input"
    assert "at most 2048 items" in error["message"]


def test_embedding_tokens_are_capped_before_any_is_embedded(server: CortexServer) -> None:
    body = {"model": EMBED_ID, "input": ["a " * 148] * 2048}  # 150 tokens each with BOS: 307,200 in all
    error = error_of(post(server, body, "/v1/embeddings", timeout=LEFT_WITHIN_S))
    assert error["param"] == "input"
    assert "at most 300000 are embedded per request" in error["message"]


def test_an_embedding_client_that_leaves_stops_the_work_quietly(server: CortexServer) -> None:
    with pytest.raises(httpx.ReadTimeout):
        post(server, LONG_EMBEDDING, "/v1/embeddings", timeout=3)
    started = time.monotonic()
    after = post(server, {"model": EMBED_ID, "input": "hi"}, "/v1/embeddings", timeout=LEFT_WITHIN_S)
    assert after.status_code == 200, after.text
    assert time.monotonic() - started < LEFT_WITHIN_S
    logged = server.output()
    assert '"POST /v1/embeddings HTTP/1.1" 499' in logged
    assert "unhandled error" not in logged
    assert "Traceback" not in logged


# About 1 MB each (the default body limit) of items that all fail validation: before, pydantic made one error
# per item (and per union member): from half a second to three seconds on the event loop for each request.
BAD_ITEMS = [
    ("/v1/embeddings", {"model": EMBED_ID, "input": [None] * 170_000}, "input"),
    ("/v1/completions", {"model": MODEL_ID, "prompt": [[1, "x"]] * 90_000}, "prompt"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "robot"}] * 60_000}, "messages[0].role"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "tool_calls": [{"id": 1}] * 80_000}]}, None),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": [{"type": "x"}] * 60_000}]}, None),
]


@pytest.mark.parametrize(("path", "body", "param"), BAD_ITEMS)
def test_a_body_of_many_bad_items_is_refused_at_the_first(
    server: CortexServer, path: str, body: dict[str, Any], param: str | None
) -> None:
    """Two at once, while /health is polled: validation stops at the first bad item, so the loop stays free."""
    answers: list[httpx.Response] = []
    senders = [threading.Thread(target=lambda: answers.append(post(server, body, path))) for _ in range(2)]
    for sender in senders:
        sender.start()
    waits = poll_health(server, seconds=LEFT_WITHIN_S, until=lambda: not any(s.is_alive() for s in senders))
    for sender in senders:
        sender.join(LEFT_WITHIN_S)
    assert [error_of(answer)["param"] for answer in answers] == [param or ANY, param or ANY]
    assert max(waits) < HEALTH_S, waits


@pytest.mark.parametrize(
    ("body", "param", "limit"),
    [
        ({**CHAT, "messages": CHAT["messages"] * 2049}, "messages", "at most 2048 items"),
        ({**CHAT, "tools": [{"type": "function", "function": {"name": "f"}}] * 129}, "tools", "at most 128 items"),
        ({**CHAT, "functions": [{"name": "f"}] * 129}, "functions", "at most 128 items"),
        ({**CHAT, "logit_bias": {str(i): 1 for i in range(1025)}}, "logit_bias", "at most 1024 items"),
    ],
)
def test_request_lists_are_capped(server: CortexServer, body: dict[str, Any], param: str, limit: str) -> None:
    error = error_of(post(server, body))
    assert error["param"] == param
    assert limit in error["message"]


def keep_sending(server: CortexServer, stop: threading.Event, send: Callable[[httpx.Client], object]) -> None:
    """Send the same hostile request again and again until `stop`; the client's own timeout bounds each one."""
    with server.client(timeout=5) as http:
        while not stop.is_set():
            with contextlib.suppress(httpx.TimeoutException):  # the long embedding is meant to be left
                send(http)


def test_health_answers_within_a_second_while_hostile_requests_run(server: CortexServer) -> None:
    hostile: list[Callable[[httpx.Client], object]] = [
        lambda http: http.post("/v1/chat/completions", json=with_schema(SLOW_PATTERN)),
        lambda http: http.post("/v1/chat/completions", json=with_tool(SLOW_PATTERN)),
        lambda http: http.post("/v1/chat/completions", json=with_schema(WIDE)),
        lambda http: http.post("/v1/chat/completions", json=with_tool(MANY_OPTIONAL)),
        lambda http: http.post("/v1/embeddings", json=LONG_EMBEDDING),
        lambda http: http.post("/v1/embeddings", json={"model": EMBED_ID, "input": ["hi"] * 2049}),
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=keep_sending, args=(server, stop, send)) for send in hostile]
    for thread in threads:
        thread.start()
    try:
        waits = poll_health(server, seconds=8)
    finally:
        stop.set()
        for thread in threads:
            thread.join(LEFT_WITHIN_S)
    assert not any(thread.is_alive() for thread in threads)
    assert max(waits) < HEALTH_S, waits


def _quote_tokens(model: Path) -> list[int]:
    """The tokens whose text starts with `"`: the only ones a string enum's grammar allows first."""
    from llama_cpp import Llama

    vocabulary = Llama(model_path=str(model), vocab_only=True, verbose=False)
    try:
        return [i for i in range(vocabulary.n_vocab()) if vocabulary.detokenize([i]).lstrip().startswith(b'"')]
    finally:
        vocabulary.close()


def test_a_grammar_no_likely_token_fits_ends_its_own_request_and_no_other(
    server: CortexServer, test_model_path: Path
) -> None:
    """Sends: an enum of 1024 strings (as many alternatives as allowed, under every size cap), with a logit_bias
    that pushes down every token the grammar allows and boosts one it refuses, again and again. Before: the grammar
    was applied to the whole vocabulary on the step every stream waits for (seconds a token; with 3000 values,
    allowed then, another client's answer was 46x slower). Now the request ends with a 400 naming the limit, and
    another client's answer takes about what it takes beside as many plain requests (they share the steps too)."""
    quotes = _quote_tokens(test_model_path)
    refused = next(token for token in range(1000, 2000) if token not in quotes)
    enum = {"type": "string", "enum": [f"value{i:05d}" for i in range(1024)]}
    hostile = {**with_schema(enum), "max_tokens": 8, "logit_bias": {str(t): -100 for t in quotes[:1023]}}
    hostile["logit_bias"][str(refused)] = 100
    plain = {**CHAT, "max_tokens": 8}
    benign = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Tell me about Rome."}], "max_tokens": 32}
    benign["temperature"] = 0
    with server.client(timeout=120) as http:
        refusal = http.post("/v1/chat/completions", json=hostile)
        assert refusal.status_code == 400, refusal.text
        assert "allowed none of the" in refusal.json()["error"]["message"]
        beside_plain, _ = _beside(server, http, benign, plain)
        beside_hostile, waits = _beside(server, http, benign, hostile)
    print(
        f"benign answer beside plain requests {beside_plain:.2f} s, beside the hostile grammar {beside_hostile:.2f} s"
    )
    assert beside_hostile < 2 * beside_plain + 0.5, (beside_plain, beside_hostile)  # before: 30x
    assert max(waits) < HEALTH_S, waits


def _beside(
    server: CortexServer, http: httpx.Client, benign: dict[str, Any], other: dict[str, Any]
) -> tuple[float, list[float]]:
    """The benign answer's time while `other` is sent again and again, and /health's waits meanwhile."""
    stop = threading.Event()
    flood = threading.Thread(target=keep_sending, args=(server, stop, functools.partial(_post_chat, body=other)))
    flood.start()
    try:
        time.sleep(0.2)
        return min(_timed(http, benign) for _ in range(2)), poll_health(server, seconds=1)
    finally:
        stop.set()
        flood.join(LEFT_WITHIN_S)


def _post_chat(http: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return http.post("/v1/chat/completions", json=body)


def _timed(http: httpx.Client, body: dict[str, Any]) -> float:
    started = time.monotonic()
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return time.monotonic() - started
