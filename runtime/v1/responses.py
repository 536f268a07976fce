"""Response bodies in OpenAI's shapes, built from llama-cpp-python's stream chunks."""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..models.engine import Chunk
from ..models.generation import TokenStats
from .streaming import event

TEXT_MARKER = "\x00cortex text\x00"  # in no id, model id or other fixed part of a chunk
_encode_text = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps with arguments makes an encoder a call


@dataclass
class Envelope:
    """What every response and chunk of one request shares."""

    kind: str  # "chat" | "text"
    model: str
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    announced_calls: set[int] = field(default_factory=set)  # tool calls whose id and name were streamed
    text_frames: dict[bool, tuple[bytes, bytes] | None] = field(default_factory=dict)  # see stream_event

    def __post_init__(self) -> None:
        prefix = "chatcmpl" if self.kind == "chat" else "cmpl"
        self.id = self.id or f"{prefix}-{uuid.uuid4().hex}"

    @property
    def object(self) -> str:
        return "chat.completion" if self.kind == "chat" else "text_completion"

    def head(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}


def usage(stats: TokenStats) -> dict[str, Any]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": stats.cached_tokens},
    }


def choice_of(chunk: Chunk) -> dict[str, Any]:
    choices = chunk.get("choices") or [{}]
    first: dict[str, Any] = choices[0]
    return first


@dataclass
class Reply:
    """A whole answer, accumulated from stream chunks."""

    texts: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None

    def add(self, chunk: Chunk) -> None:
        choice = choice_of(chunk)
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        if "text" in choice:
            self.texts.append(choice["text"] or "")
            return
        delta = choice.get("delta") or {}
        if delta.get("content"):
            self.texts.append(delta["content"])
        for call in delta.get("tool_calls") or []:
            self._add_tool_call(call)

    def _add_tool_call(self, call: dict[str, Any]) -> None:
        known = self.tool_calls.setdefault(
            call.get("index", 0), {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
        )
        known["id"] = call.get("id") or known["id"]
        function = call.get("function") or {}
        known["function"]["name"] = known["function"]["name"] or function.get("name") or ""
        known["function"]["arguments"] += function.get("arguments") or ""

    @property
    def text(self) -> str:
        return "".join(self.texts)


def chat_message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [reply.tool_calls[index] for index in sorted(reply.tool_calls)]
    elif message["content"] is None:
        message["content"] = ""
    return message


def completion_body(envelope: Envelope, reply: Reply, stats: TokenStats) -> dict[str, Any]:
    finish = reply.finish_reason or "length"
    if envelope.kind == "chat":
        choice = {"index": 0, "message": chat_message(reply), "logprobs": None, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": reply.text, "logprobs": None, "finish_reason": finish}
    return {**envelope.head(envelope.object), "choices": [choice], "usage": usage(stats), "system_fingerprint": None}


def stream_chunk(envelope: Envelope, chunk: Chunk, include_usage: bool) -> dict[str, Any]:
    """A llama-cpp-python chunk re-addressed with this request's id and model id."""
    choice = choice_of(chunk)
    finish = choice.get("finish_reason")
    if envelope.kind == "chat":
        delta = _openai_delta(envelope, choice.get("delta") or {})
        body_choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = {**envelope.head("chat.completion.chunk"), "choices": [body_choice], "system_fingerprint": None}
    else:
        body_choice = {"index": 0, "text": choice.get("text") or "", "logprobs": None, "finish_reason": finish}
        body = {**envelope.head("text_completion"), "choices": [body_choice], "system_fingerprint": None}
    if include_usage:
        body["usage"] = None
    return body


def stream_event(envelope: Envelope, chunk: Chunk, include_usage: bool) -> bytes:
    """The event of stream_chunk(...), byte for byte. A chunk that carries nothing but text (nearly every one) is
    its text's JSON between the request's fixed bytes, made once: encoding a whole chunk per token was most of
    what an event cost."""
    text = _plain_text(envelope.kind, chunk)
    if include_usage not in envelope.text_frames:
        envelope.text_frames[include_usage] = _text_frame(envelope, include_usage)
    frame = envelope.text_frames[include_usage]
    if text is None or frame is None:
        return event(stream_chunk(envelope, chunk, include_usage))
    return frame[0] + _encode_text(text).encode("utf-8") + frame[1]


def _plain_text(kind: str, chunk: Chunk) -> str | None:
    choice = choice_of(chunk)
    if choice.get("finish_reason") is not None:
        return None
    if kind == "chat":
        delta = choice.get("delta") or {}
        content = delta.get("content")
        others = any(value is not None for key, value in delta.items() if key != "content")
        return content if isinstance(content, str) and not others else None
    text = choice.get("text")
    return text if isinstance(text, str) else None


def _text_frame(envelope: Envelope, include_usage: bool) -> tuple[bytes, bytes] | None:
    """The bytes before and after a text chunk's text: its event made with a marker for the text, cut there."""
    sample = {"choices": [{"delta": {"content": TEXT_MARKER}} if envelope.kind == "chat" else {"text": TEXT_MARKER}]}
    whole = event(stream_chunk(envelope, sample, include_usage))
    marker = json.dumps(TEXT_MARKER).encode()
    return (
        (whole[: whole.index(marker)], whole[whole.index(marker) + len(marker) :]) if whole.count(marker) == 1 else None
    )


def _openai_delta(envelope: Envelope, delta: dict[str, Any]) -> dict[str, Any]:
    """llama-cpp-python repeats a tool call's id and name in every chunk and sends nulls; OpenAI sends them once."""
    cleaned = {key: value for key, value in delta.items() if value is not None}
    calls = []
    for call in cleaned.get("tool_calls") or []:
        index = call.get("index", 0)
        if index in envelope.announced_calls:
            arguments = (call.get("function") or {}).get("arguments", "")
            calls.append({"index": index, "function": {"arguments": arguments}})
        else:
            calls.append(call)
        envelope.announced_calls.add(index)
    if calls:
        cleaned["tool_calls"] = calls
        cleaned.pop("function_call", None)  # the legacy twin of tool_calls
    return cleaned


def usage_chunk(envelope: Envelope, stats: TokenStats) -> dict[str, Any]:
    obj = "chat.completion.chunk" if envelope.kind == "chat" else "text_completion"
    return {**envelope.head(obj), "choices": [], "usage": usage(stats), "system_fingerprint": None}


def embeddings_body(model: str, vectors: list[list[float]], prompt_tokens: int, encoding: str) -> dict[str, Any]:
    data = [
        {"object": "embedding", "index": index, "embedding": _encode(vector, encoding)}
        for index, vector in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector


def models_body(states: dict[str, str], created: int) -> dict[str, Any]:
    """OpenAI's model list; `state` (ours: ready, loading, sleeping, ...) beside its fields."""
    return {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "created": created, "owned_by": "cortex", "state": state}
            for model_id, state in states.items()
        ],
    }
