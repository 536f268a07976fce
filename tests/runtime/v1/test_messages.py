"""Anthropic's Messages API on the real model, through `cortex start` with an API key and the official anthropic
client: plain and streamed messages, a stop sequence, a tool use round trip, errors in Anthropic's shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import (
    ImageBlockParam,
    MessageParam,
    OutputConfigParam,
    ToolChoiceToolParam,
    ToolParam,
    ToolResultBlockParam,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from menlo_cortex.runtime.v1.messages_request import MessagesRequest

from tests.runtime.cortex_server import MODEL_ID, CortexServer, launch

KEY = "messages-key-0123456789"
COUNT: list[MessageParam] = [{"role": "user", "content": "Count from one to twenty in words."}]
GREEDY = {"temperature": 0}  # what older clients send: today's SDK no longer has it


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, cortex_command: list[str], test_data_dir: Path
) -> Iterator[CortexServer]:
    body = "server:\n  auth:\n    api_keys: ['${env:MESSAGES_KEY}']\n"
    running = launch(
        tmp_path_factory.mktemp("messages"), cortex_command, test_data_dir, body, env={"MESSAGES_KEY": KEY}
    )
    try:
        running.wait_ready()
        yield running
    finally:
        running.terminate()


@pytest.fixture(scope="module")
def client(server: CortexServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=120) as made:  # x-api-key
        yield made


def test_a_message_with_a_system_prompt(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL_ID, max_tokens=8, system="Answer briefly.", messages=COUNT)
    assert message.id.startswith("msg_")
    assert (message.type, message.role, message.model) == ("message", "assistant", MODEL_ID)
    assert [block.type for block in message.content] == ["text"]
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 0
    assert 0 < message.usage.output_tokens <= 8


def test_a_streamed_message_sends_anthropics_events(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL_ID, max_tokens=8, messages=COUNT, extra_body=GREEDY) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert {"content_block_start", "content_block_delta", "content_block_stop"} <= set(kinds)
    whole = client.messages.create(model=MODEL_ID, max_tokens=8, messages=COUNT, extra_body=GREEDY)
    assert final.content[0].text == whole.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_a_stop_sequence_ends_the_text_and_is_named(client: anthropic.Anthropic) -> None:
    free = client.messages.create(model=MODEL_ID, max_tokens=16, messages=COUNT, extra_body=GREEDY)
    text = free.content[0].text  # type: ignore[union-attr]
    stop = next(text[at : at + 3] for at in range(2, len(text) - 3) if text[at : at + 3].strip() == text[at : at + 3])
    stopped = client.messages.create(
        model=MODEL_ID, max_tokens=16, messages=COUNT, extra_body=GREEDY, stop_sequences=[stop]
    )
    assert stopped.content[0].text == text[: text.index(stop)]  # type: ignore[union-attr]
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", stop)
    with client.messages.stream(model=MODEL_ID, max_tokens=16, messages=COUNT, extra_body=GREEDY,
                                stop_sequences=[stop]) as stream:  # fmt: skip
        streamed = stream.get_final_message()
    assert streamed.content[0].text == text[: text.index(stop)]  # type: ignore[union-attr]
    assert (streamed.stop_reason, streamed.stop_sequence) == ("stop_sequence", stop)


def test_a_tool_use_round_trip(client: anthropic.Anthropic) -> None:
    city: dict[str, object] = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tool: ToolParam = {"name": "weather", "description": "The weather in a city.", "input_schema": city}
    asked: list[MessageParam] = [{"role": "user", "content": "What is the weather in Paris?"}]
    forced: ToolChoiceToolParam = {"type": "tool", "name": "weather"}
    called = client.messages.create(model=MODEL_ID, max_tokens=48, messages=asked, tools=[tool], tool_choice=forced)
    assert called.stop_reason == "tool_use"
    [use] = [block for block in called.content if block.type == "tool_use"]
    assert use.name == "weather"
    assert use.id.startswith("toolu_")
    assert isinstance(use.input, dict)
    result: ToolResultBlockParam = {"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 C"}
    turns: list[MessageParam] = [*asked, {"role": "assistant", "content": called.content}]
    turns.append({"role": "user", "content": [result]})
    answered = client.messages.create(model=MODEL_ID, max_tokens=8, tools=[tool], messages=turns)
    assert answered.content[0].type == "text"


def test_output_config_format_constrains_the_text_to_the_schema(client: anthropic.Anthropic) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "required": ["n"],
        "additionalProperties": False,
    }
    config: OutputConfigParam = {"format": {"type": "json_schema", "schema": schema}}
    message = client.messages.create(model=MODEL_ID, max_tokens=24, messages=COUNT, output_config=config)
    text = message.content[0].text  # type: ignore[union-attr]
    assert text.startswith('{"n":') or text.startswith('{ "n"'), text


def test_count_tokens_is_the_messages_input_tokens(client: anthropic.Anthropic) -> None:
    turns: list[MessageParam] = [
        *COUNT,
        {"role": "assistant", "content": "One, two."},
        {"role": "user", "content": "Go on."},
    ]
    tool: ToolParam = {"name": "now", "input_schema": {"type": "object", "properties": {}}}
    counted = client.messages.count_tokens(model=MODEL_ID, system="Answer briefly.", messages=turns, tools=[tool])
    sent = client.messages.create(model=MODEL_ID, max_tokens=1, system="Answer briefly.", messages=turns, tools=[tool])
    assert counted.input_tokens == sent.usage.input_tokens > 10


def test_errors_come_in_anthropics_shape(server: CortexServer, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="nope", max_tokens=4, messages=COUNT)
    said = missing.value.body
    assert isinstance(said, dict)
    assert said == {"type": "error", "error": {"type": "not_found_error", "message": said["error"]["message"]}}
    picture: ImageBlockParam = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AA=="},
    }
    with pytest.raises(anthropic.BadRequestError) as image:
        client.messages.create(model=MODEL_ID, max_tokens=4, messages=[{"role": "user", "content": [picture]}])
    assert "messages[0].content[0]" in image.value.message
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    asked = {"model": MODEL_ID, "max_tokens": 4, "messages": COUNT}
    for body, said in (
        ({"model": MODEL_ID, "messages": COUNT}, "Missing required parameter: 'max_tokens'"),
        ({**asked, "thinking": {"type": "enabled", "budget_tokens": 1024}}, "extended thinking is not supported"),
        ({**asked, "tool_choice": {"type": "any"}}, "`any` is not supported"),
    ):
        answer = httpx.post(f"{server.base_url}/v1/messages", json=body, headers=headers, timeout=60)
        assert answer.status_code == 400
        assert answer.json()["type"] == "error"
        assert answer.json()["error"]["type"] == "invalid_request_error"
        assert said in answer.json()["error"]["message"]
    many = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}] * 1024
    unnamed = {**asked, "tool_choice": {"type": "tool", "name": "a b"}}
    for body, said in (({**asked, "system": "s", "messages": many}, "'messages'"), (unnamed, "tool_choice.name")):
        for path in ("/v1/messages", "/v1/messages/count_tokens"):  # a chat of 2049 messages is refused, not a 500
            sent = body if path == "/v1/messages" else {key: body[key] for key in body if key != "max_tokens"}
            answer = httpx.post(f"{server.base_url}{path}", json=sent, headers=headers, timeout=60)
            assert answer.status_code == 400, answer.text
            assert said in answer.json()["error"]["message"]
    plain_key = httpx.post(f"{server.base_url}/v1/chat/completions", json={}, headers={"x-api-key": KEY}, timeout=60)
    assert plain_key.status_code == 401  # x-api-key on Anthropic's routes only: caches keep other answers
    for path, headers in (("/v1/messages", {"x-api-key": "wrong"}), ("/v1/messages/count_tokens", {})):
        refused = httpx.post(f"{server.base_url}{path}", json={}, headers=headers, timeout=60)
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "authentication_error"  # refused before the route: same shape
    form = {"x-api-key": KEY, "content-type": "text/plain"}  # what a web page may send without asking: refused
    plain = httpx.post(f"{server.base_url}/v1/messages", content=b"{}", headers=form, timeout=60)
    assert plain.status_code in (403, 415)
    assert plain.json()["type"] == "error"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
BLOCK = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "tool_use", "tool_result", "image", "thinking"])},
    optional={"text": JSON, "id": JSON, "name": JSON, "input": JSON, "tool_use_id": JSON, "content": JSON},
)
TURN = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]),
                              "content": st.text(max_size=8) | st.lists(BLOCK, max_size=3)})  # fmt: skip
FIELDS = [*MessagesRequest.model_fields, "unknown_field"]


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, cortex_command: list[str], test_data_dir: Path
) -> Iterator[CortexServer]:
    body = "server:\n  limits:\n    max_tokens: 1\n"  # whatever max_tokens a body asks for: one token
    running = launch(tmp_path_factory.mktemp("fuzzed"), cortex_command, test_data_dir, body)
    try:
        running.wait_ready()
        yield running
    finally:
        running.terminate()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=3),
    turns=st.lists(TURN, min_size=1, max_size=3),
    count=st.booleans(),
)
def test_random_bodies_never_fail_the_server(
    fuzzed: CortexServer, changes: dict[str, Any], turns: list[dict[str, Any]], count: bool
) -> None:
    """Random turns and fields: never a 5xx, every refusal in Anthropic's shape, the server stays up."""
    body = {"model": MODEL_ID, "max_tokens": 4, "messages": turns, **changes}
    path = "/v1/messages/count_tokens" if count else "/v1/messages"
    answer = httpx.post(f"{fuzzed.base_url}{path}", content=json.dumps(body).encode(), timeout=60,
                        headers={"content-type": "application/json"})  # fmt: skip
    assert answer.status_code < 500, (body, answer.text)
    if answer.status_code >= 400:
        said = answer.json()
        assert said["type"] == "error"
        assert set(said["error"]) == {"type", "message"}
