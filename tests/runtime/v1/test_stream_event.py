"""stream_event's shortcut for text chunks gives the bytes the whole chunk's encoding gives, for every kind of chunk."""

from __future__ import annotations

from typing import Any

import pytest
from menlo_cortex.runtime.v1.responses import Envelope, stream_chunk, stream_event
from menlo_cortex.runtime.v1.streaming import event

pytestmark = pytest.mark.timeout(30)
TEXTS = ["Hello", "", " world\n", 'a "quoted" \\ line', "\u00e9\u4e2d\U0001f600", "\x00\x1f\u2028", "cortex text"]


def chat(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def text(value: Any, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "text": value, "finish_reason": finish}]}


CHAT_CHUNKS = [
    *(chat({"content": value}) for value in TEXTS),
    chat({"role": "assistant", "content": "Hi"}),
    chat({"content": None, "role": None}),
    chat({"content": "x", "tool_calls": None}),
    chat({"content": "done"}, "stop"),
    chat({}, "length"),
    chat({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{"}}]}),
    {"choices": []},
]
TEXT_CHUNKS = [*(text(value) for value in TEXTS), text(None), text("end", "stop"), text("", "length"), {}]


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("model", ["gemma", 'a "model"/\u00e9'])
def test_every_chat_chunk_is_encoded_as_the_whole_chunk_is(include_usage: bool, model: str) -> None:
    fast, whole = Envelope("chat", model), Envelope("chat", model, id="same")
    fast.id = whole.id
    fast.created = whole.created
    for chunk in CHAT_CHUNKS:
        assert stream_event(fast, chunk, include_usage) == event(stream_chunk(whole, chunk, include_usage)), chunk


@pytest.mark.parametrize("include_usage", [False, True])
def test_every_text_chunk_is_encoded_as_the_whole_chunk_is(include_usage: bool) -> None:
    envelope = Envelope("text", "gemma")
    for chunk in TEXT_CHUNKS:
        assert stream_event(envelope, chunk, include_usage) == event(stream_chunk(envelope, chunk, include_usage))


def test_text_chunks_take_the_shortcut() -> None:
    """The request's fixed bytes are made once, then reused (a changed envelope would show the old id)."""
    envelope = Envelope("text", "gemma")
    first = stream_event(envelope, text("a"), False)
    envelope.id = "changed"
    assert stream_event(envelope, text("a"), False) == first
    assert b"changed" in stream_event(envelope, text("a", "stop"), False)  # a last chunk is encoded whole
