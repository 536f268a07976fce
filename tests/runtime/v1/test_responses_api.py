"""OpenAI's Responses API on the real model, through `cortex start` with two API keys and the official openai
client: plain and streamed responses, a function call round trip, json_schema output, conversations continued
with previous_response_id, stored responses owned by their key, and what the server refuses, by name."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.responses import FunctionToolParam, ResponseInputParam

from tests.runtime.cortex_server import MODEL_ID, CortexServer, launch

OWNER, OTHER = f"owner-{uuid.uuid4().hex}", f"other-{uuid.uuid4().hex}"  # fresh keys: the data folder is shared
COUNT = "Count from one to twenty in words."
GREEDY: dict[str, Any] = {"temperature": 0}
CITY: dict[str, object] = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER: FunctionToolParam = {"type": "function", "name": "weather", "description": "The weather in a city.",
                              "parameters": CITY, "strict": True}  # fmt: skip


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, cortex_command: list[str], test_data_dir: Path
) -> Iterator[CortexServer]:
    body = "server:\n  auth:\n    api_keys: ['${env:OWNER_KEY}', '${env:OTHER_KEY}']\n"
    folder = tmp_path_factory.mktemp("responses")
    running = launch(folder, cortex_command, test_data_dir, body, env={"OWNER_KEY": OWNER, "OTHER_KEY": OTHER})
    try:
        running.wait_ready()
        yield running
    finally:
        running.terminate()


def _text(item: Any) -> str:
    """The first content part's text of a listed input item."""
    return str(item.to_dict()["content"][0]["text"])


def _stored(response: Any) -> bool:
    return bool(response.to_dict()["store"])


def _client(server: CortexServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def client(server: CortexServer) -> Iterator[openai.OpenAI]:
    with _client(server, OWNER) as made:
        yield made


@pytest.fixture(scope="module")
def other(server: CortexServer) -> Iterator[openai.OpenAI]:
    with _client(server, OTHER) as made:
        yield made


def test_a_response_with_instructions(client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL_ID, instructions="Answer briefly.", input=COUNT,
                                       max_output_tokens=8)  # fmt: skip
    assert response.id.startswith("resp_")
    assert (response.object, response.model, _stored(response)) == ("response", MODEL_ID, True)
    assert [item.type for item in response.output] == ["message"]
    assert response.output_text
    assert response.status in ("completed", "incomplete")
    if response.status == "incomplete":
        assert response.incomplete_details is not None
        assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None
    assert response.usage.input_tokens > 0
    assert 0 < response.usage.output_tokens <= 8
    assert response.instructions == "Answer briefly."


def test_a_streamed_response_sends_the_documented_events(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODEL_ID, input=COUNT, max_output_tokens=8, **GREEDY) as stream:
        events = list(stream)
    final = events[-1].response  # type: ignore[union-attr]  # (the SDK's get_final_response: completed ones only)
    kinds = [event.type for event in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]  # fmt: skip
    assert "response.output_text.delta" in kinds
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.incomplete" if final.status == "incomplete" else "response.completed"]  # fmt: skip
    assert [event.sequence_number for event in events] == list(range(len(events)))
    whole = client.responses.create(model=MODEL_ID, input=COUNT, max_output_tokens=8, **GREEDY)
    assert final.output_text == whole.output_text
    assert client.responses.retrieve(final.id).output_text == final.output_text  # kept before it was complete


def test_a_function_call_round_trip(client: openai.OpenAI) -> None:
    asked = "What is the weather in Paris?"
    called = client.responses.create(model=MODEL_ID, input=asked, tools=[WEATHER], max_output_tokens=64, **GREEDY,
                                     tool_choice={"type": "function", "name": "weather"})  # fmt: skip
    [call] = [item for item in called.output if item.type == "function_call"]
    assert call.name == "weather"
    assert call.call_id.startswith("call_")
    assert isinstance(json.loads(call.arguments), dict)
    result: ResponseInputParam = [{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21 C"}]
    answered = client.responses.create(model=MODEL_ID, previous_response_id=called.id, input=result,
                                       tools=[WEATHER], max_output_tokens=8)  # fmt: skip
    assert answered.output[0].type == "message"
    assert answered.previous_response_id == called.id
    with client.responses.stream(model=MODEL_ID, input=asked, tools=[WEATHER], max_output_tokens=64, **GREEDY,
                                 tool_choice={"type": "function", "name": "weather"}) as stream:  # fmt: skip
        kinds = [event.type for event in stream]
        streamed = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    [streamed_call] = [item for item in streamed.output if item.type == "function_call"]
    assert isinstance(json.loads(streamed_call.arguments), dict)


def test_json_schema_output_follows_the_schema(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
              "additionalProperties": False}  # fmt: skip
    response = client.responses.create(
        model=MODEL_ID, input=COUNT, max_output_tokens=24,
        text={"format": {"type": "json_schema", "name": "number", "schema": schema, "strict": True}},
    )  # fmt: skip
    assert response.output_text.replace(" ", "").startswith('{"n":'), response.output_text
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "json_schema"


def test_previous_response_id_continues_the_conversation(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL_ID, input="My name is Ada. Say hello.", max_output_tokens=8, **GREEDY)
    second = client.responses.create(model=MODEL_ID, previous_response_id=first.id, input="What is my name?",
                                     max_output_tokens=8, **GREEDY)  # fmt: skip
    assert first.usage is not None
    assert second.usage is not None
    # The stored turns are the prompt: the first input and answer come before the new question.
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    assert second.usage.input_tokens_details.cached_tokens > 0  # the conversation's prefix was reused
    items = client.responses.input_items.list(second.id, order="asc")
    assert [item.type for item in items.data] == ["message"]  # this response's own input
    assert _text(items.data[0]) == "What is my name?"


def test_stored_responses_belong_to_their_key(
    server: CortexServer, client: openai.OpenAI, other: openai.OpenAI
) -> None:
    mine = client.responses.create(model=MODEL_ID, input=COUNT, max_output_tokens=4)
    assert client.responses.retrieve(mine.id).id == mine.id
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    with pytest.raises(openai.BadRequestError) as continued:
        other.responses.create(model=MODEL_ID, previous_response_id=mine.id, input="Go on.", max_output_tokens=4)
    assert continued.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert client.responses.retrieve(mine.id).id == mine.id  # still there for its owner
    headed = httpx.head(f"{server.base_url}/v1/responses/{mine.id}", headers={"authorization": f"Bearer {OWNER}"})
    assert headed.status_code == 200
    assert client.responses.retrieve(mine.id).id == mine.id  # HEAD (a link checker's, a proxy's) deletes nothing
    client.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(mine.id)


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    response = client.responses.create(model=MODEL_ID, input=COUNT, max_output_tokens=4, store=False)
    assert _stored(response) is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_a_conversation_longer_than_the_context_is_a_400(client: openai.OpenAI) -> None:
    long = "one two three four five six seven eight " * 60  # ~480 tokens of a 1024 context
    first = client.responses.create(model=MODEL_ID, input=long, max_output_tokens=4)
    second = client.responses.create(model=MODEL_ID, previous_response_id=first.id, input=long, max_output_tokens=4)
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=MODEL_ID, previous_response_id=second.id, input=long, max_output_tokens=4)
    said = refused.value.body
    assert isinstance(said, dict)
    assert (said["param"], said["code"]) == ("previous_response_id", "context_length_exceeded")


UNSUPPORTED: list[tuple[dict[str, Any], str]] = [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]},
     "input[0].content[0]"),
    ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "input[0].type"),
    ({"background": True}, "background"),
    ({"truncation": "auto"}, "truncation"),
    ({"tool_choice": "required", "tools": [WEATHER]}, "tool_choice"),
    ({"tool_choice": {"type": "function", "name": "other"}, "tools": [WEATHER]}, "tool_choice"),
    ({"reasoning": {"effort": "high"}}, "reasoning"),
    ({"include": ["message.output_text.logprobs"]}, "include[0]"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"previous_response_id": "resp_doesnotexist"}, "previous_response_id"),
    ({"input": [{"role": "user", "content": "x"}] * 2049}, "input"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "param"), UNSUPPORTED, ids=[param for _, param in UNSUPPORTED])
def test_what_the_server_cannot_do_is_a_400_naming_the_field(
    server: CortexServer, change: dict[str, Any], param: str
) -> None:
    body = {"model": MODEL_ID, "input": COUNT, "max_output_tokens": 4, **change}
    answer = httpx.post(f"{server.base_url}/v1/responses", json=body, headers={"authorization": f"Bearer {OWNER}"},
                        timeout=60)  # fmt: skip
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param


def test_listing_input_items_pages_and_checks_its_query(server: CortexServer, client: openai.OpenAI) -> None:
    turns: ResponseInputParam = [{"role": "user", "content": f"Line {n}."} for n in range(5)]
    response = client.responses.create(model=MODEL_ID, input=turns, max_output_tokens=2)
    first = client.responses.input_items.list(response.id, limit=2, order="asc")
    assert [_text(item) for item in first.data] == ["Line 0.", "Line 1."]
    assert first.has_more
    rest = client.responses.input_items.list(response.id, limit=10, order="asc", after=first.data[-1].id)
    assert [_text(item) for item in rest.data] == ["Line 2.", "Line 3.", "Line 4."]
    assert not rest.has_more
    assert client.responses.input_items.list(response.id, after="msg_unknown").data == []  # a cursor past the end
    newest = client.responses.input_items.list(response.id, limit=1)
    assert _text(newest.data[0]) == "Line 4."
    headers = {"authorization": f"Bearer {OWNER}"}
    queries = (("limit=0", "limit"), ("limit=x", "limit"), ("limit=%C2%B2", "limit"), ("limit=" + "9" * 5000, "limit"),
               ("order=up", "order"))  # fmt: skip
    for query, param in queries:
        answer = httpx.get(f"{server.base_url}/v1/responses/{response.id}/input_items?{query}", headers=headers)
        assert (answer.status_code, answer.json()["error"]["param"]) == (400, param)
    odd = httpx.get(f"{server.base_url}/v1/responses/..%2Fx%0A", headers=headers)
    assert odd.status_code == 404
    assert "%0A" not in odd.text
    assert "\\n" not in odd.json()["error"]["message"]


def test_a_server_without_keys_stores_nothing_by_default(shared_server: CortexServer) -> None:
    with _client(shared_server, "unused") as anyone:
        response = anyone.responses.create(model=MODEL_ID, input=COUNT, max_output_tokens=4)
        assert _stored(response) is False
        with pytest.raises(openai.NotFoundError):
            anyone.responses.retrieve(response.id)
        with pytest.raises(openai.BadRequestError) as refused:
            anyone.responses.create(model=MODEL_ID, previous_response_id=response.id, input="Go on.")
    assert "data.conversations.enabled" in refused.value.message


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
PART = st.fixed_dictionaries({"type": st.sampled_from(["input_text", "output_text", "input_image", "refusal"])},
                             optional={"text": JSON, "refusal": JSON, "image_url": JSON})  # fmt: skip
ITEM = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning", "item_reference"])},
    optional={"role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]),
              "content": st.text(max_size=8) | st.lists(PART, max_size=3), "call_id": JSON, "name": JSON,
              "arguments": JSON, "output": JSON, "id": JSON},
)  # fmt: skip
FIELDS = ["instructions", "tools", "tool_choice", "text", "store", "previous_response_id", "include", "reasoning",
          "metadata", "truncation", "temperature", "top_p", "parallel_tool_calls", "stream", "unknown"]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=3), items=st.lists(ITEM, max_size=3))
def test_random_bodies_never_fail_the_server(
    server: CortexServer, changes: dict[str, Any], items: list[dict[str, Any]]
) -> None:
    """Random items and fields: never a 5xx, every refusal in OpenAI's error shape, the server stays up."""
    body = {"model": MODEL_ID, "max_output_tokens": 1, "input": items or COUNT, **changes}
    answer = httpx.post(f"{server.base_url}/v1/responses", content=json.dumps(body).encode(), timeout=60,
                        headers={"content-type": "application/json", "authorization": f"Bearer {OWNER}"})  # fmt: skip
    assert answer.status_code < 500, (body, answer.text)
    if answer.status_code >= 400:
        assert set(answer.json()["error"]) == {"message", "type", "param", "code"}


def test_only_what_is_read_is_kept(server: CortexServer, client: openai.OpenAI) -> None:
    """A client's extra keys are neither read nor stored; the server names the items; numbers too large for a
    float do not break the answer or the stored response."""
    headers = {"authorization": f"Bearer {OWNER}"}
    # `output` is a field of another kind of item: on a message it is an extra key too (the fuzzer found it read)
    padded = {"role": "user", "content": "Hi", "id": "msg_mine", "padding": [[]] * 1000, "output": [None]}
    tool = {**WEATHER, "x": -1e999}
    body = {"model": MODEL_ID, "input": [padded], "max_output_tokens": 2, "tools": [tool]}
    answer = httpx.post(f"{server.base_url}/v1/responses", content=json.dumps(body).replace("-Infinity", "-1e999"),
                        headers={**headers, "content-type": "application/json"}, timeout=60)  # fmt: skip
    assert answer.status_code == 200, answer.text
    response_id = answer.json()["id"]
    [item] = client.responses.input_items.list(response_id).data
    listed = item.to_dict()
    assert "padding" not in listed
    assert "output" not in listed
    assert listed["id"] != "msg_mine"
    assert httpx.get(f"{server.base_url}/v1/responses/{response_id}", headers=headers).status_code == 200
    crowded = {"model": MODEL_ID, "input": "Hi", "metadata": {f"k{n}": "v" for n in range(17)}}
    refused = httpx.post(f"{server.base_url}/v1/responses", json=crowded, headers=headers, timeout=60)
    assert (refused.status_code, refused.json()["error"]["param"]) == (400, "metadata")
