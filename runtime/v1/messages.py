"""Anthropic's Messages API on the chat completion machinery: a Messages request becomes the chat request it
means (validated and bounded as one), and the answer is shaped as a message, whole or as Anthropic's events."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..http.anthropic_errors import error_body
from ..http.errors import ApiError
from ..models.engine import Chunk
from ..models.generation import TokenStats
from .generate import Job
from .messages_request import (
    CountTokensRequest,
    InputMessage,
    MessagesRequest,
    TextBlock,
    ToolDefinition,
    ToolResultBlock,
    ToolUseBlock,
)
from .requests import ChatCompletionRequest
from .responses import Reply, choice_of
from .sampling import unsupported
from .streaming import Eagerly, event
from .validation import translated

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use"}


def chat_request(body: MessagesRequest) -> ChatCompletionRequest:
    """The chat completion request a Messages request means; ApiError naming the field it cannot honour."""
    _refuse_unsupported(body)
    messages = _chat_messages(body.system, body.messages)
    chat: dict[str, Any] = {"model": body.model, "messages": messages, "max_tokens": body.max_tokens}
    sampling = {"temperature": body.temperature, "top_p": body.top_p}
    chat |= {key: value for key, value in sampling.items() if value is not None}
    if body.tools:
        chat["tools"] = [_function_tool(tool) for tool in body.tools]
    choice = body.tool_choice
    if choice is not None and choice.type != "auto":
        named = {"type": "function", "function": {"name": choice.name}}
        chat["tool_choice"] = "none" if choice.type == "none" else named
    if body.output_config is not None and body.output_config.format is not None:
        schema = body.output_config.format.schema_
        chat["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    return translated(ChatCompletionRequest, chat)


def _chat_messages(system: str | list[TextBlock] | None, turns: list[InputMessage]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": _text(system)}] if system else []
    for index, message in enumerate(turns):
        messages += _turn_messages(message, index)
    return messages


def _function_tool(tool: ToolDefinition) -> dict[str, Any]:
    function = {"name": tool.name, "description": tool.description or "", "parameters": tool.input_schema}
    return {"type": "function", "function": function}


def count_request(body: CountTokensRequest) -> ChatCompletionRequest:
    """The chat request whose prompt count_tokens counts: its messages and tools, checked as a chat request is."""
    _refuse_thinking(body.thinking)
    chat: dict[str, Any] = {"model": body.model, "messages": _chat_messages(body.system, body.messages)}
    if body.tools:
        chat["tools"] = [_function_tool(tool) for tool in body.tools]
    return translated(ChatCompletionRequest, chat)


def _refuse_thinking(thinking: dict[str, Any] | None) -> None:
    if thinking is not None and thinking.get("type") != "disabled":
        raise unsupported("thinking", "extended thinking is not supported; leave it out or disable it.")


def _refuse_unsupported(body: MessagesRequest) -> None:
    _refuse_thinking(body.thinking)
    if body.container is not None or body.mcp_servers:
        raise unsupported("container" if body.container else "mcp_servers", "no hosted tools run here.")
    if body.tool_choice is not None and body.tool_choice.type == "any":
        raise unsupported("tool_choice", "`any` is not supported; name the tool (`type: tool`) to force a call.")
    if body.tool_choice is not None and body.tool_choice.type == "tool" and not body.tool_choice.name:
        raise ApiError(400, "tool_choice.name: a tool choice of type `tool` names the tool.", param="tool_choice")


def _text(content: str | list[TextBlock]) -> str:
    return content if isinstance(content, str) else "\n".join(block.text for block in content)


def _turn_messages(message: InputMessage, index: int) -> list[dict[str, Any]]:
    """One Messages turn as chat messages: a user's tool results first (they answer the turn before), each a
    `tool` message, then its text; an assistant's text and its tool calls in one message."""
    if isinstance(message.content, str):
        return [{"role": message.role, "content": message.content}]
    texts, results, calls = [], [], []
    for number, block in enumerate(message.content):
        where = f"messages[{index}].content[{number}]"
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolResultBlock) and message.role == "user":
            results.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": _result_text(block, where)})
        elif isinstance(block, ToolUseBlock) and message.role == "assistant":
            arguments = json.dumps(block.input, ensure_ascii=False)
            calls.append({"id": block.id, "type": "function", "function": {"name": block.name, "arguments": arguments}})
        else:
            raise unsupported(where, f"a `{block.type}` block is not supported in a {message.role} turn; send text.")
    turn: dict[str, Any] = {"role": message.role, "content": "\n".join(texts)}
    if calls:
        turn["tool_calls"] = calls
    return results + ([turn] if texts or calls or not results else [])


def _result_text(block: ToolResultBlock, where: str) -> str:
    if block.content is None or isinstance(block.content, str):
        return block.content or ""
    if any(not isinstance(part, TextBlock) for part in block.content):
        raise unsupported(f"{where}.content", "a tool result holds text here.")
    return "\n".join(part.text for part in block.content if isinstance(part, TextBlock))


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def _usage(stats: TokenStats) -> dict[str, int]:
    return {"input_tokens": stats.prompt_tokens, "output_tokens": stats.completion_tokens,
            "cache_read_input_tokens": stats.cached_tokens}  # fmt: skip


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        arguments = {}
    return {"type": "tool_use", "id": _tool_id(call.get("id")), "name": function.get("name") or "",
            "input": arguments if isinstance(arguments, dict) else {}}  # fmt: skip


def _tool_id(given: str | None) -> str:
    return f"toolu_{given}" if given and not given.startswith("toolu_") else given or f"toolu_{uuid.uuid4().hex}"


@dataclass
class Anthropic:
    """Messages' shapes: a message, or message_start, a start, deltas and a stop per content block, then
    message_delta (stop reason, usage) and message_stop. Stop sequences are matched here, not by llama.cpp,
    which does not say which one ended the text (Anthropic's stop_sequence names it)."""

    model: str
    stop_sequences: tuple[str, ...] = ()
    id: str = field(default_factory=message_id)
    stopped_by: str | None = None

    def watch(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        """The chunks' text up to the first stop sequence, held back while it may be the start of one; at a
        match the text ends there and the generation is stopped (the chunks are closed), as soon as the model
        wrote it, however slowly the client reads."""
        return Eagerly(self._watched(chunks)) if self.stop_sequences else chunks

    async def _watched(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        try:
            async for chunk in self._cut(chunks):
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]  # at a stop sequence: the generation stops

    async def _cut(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        held = ""
        keep = max(len(sequence) for sequence in self.stop_sequences) - 1
        async for chunk in chunks:
            choice = choice_of(chunk)
            delta = choice.get("delta") or {}
            held += delta.get("content") or ""
            found = [(held.find(sequence), sequence) for sequence in self.stop_sequences if sequence in held]
            if found:
                at, self.stopped_by = min(found)
                yield _text_chunk(held[:at], "stop")
                return
            ready, held = held[: max(len(held) - keep, 0)], held[max(len(held) - keep, 0) :]
            rest = {key: value for key, value in delta.items() if key != "content"}
            if ready or rest or choice.get("finish_reason"):
                yield {"choices": [{"delta": {**rest, "content": ready}, "finish_reason": choice.get("finish_reason")}]}
        if held:
            yield _text_chunk(held, None)

    def _stop(self, finish: str | None) -> tuple[str, str | None]:
        if self.stopped_by is not None:
            return "stop_sequence", self.stopped_by
        return STOP_REASONS.get(finish or "length", "end_turn"), None

    def head(self) -> dict[str, Any]:
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model}

    async def body(self, job: Job, reply: Reply, stats: TokenStats) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        content += [_tool_use(reply.tool_calls[index]) for index in sorted(reply.tool_calls)]
        stop, sequence = self._stop(reply.finish_reason)
        return {
            **self.head(),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": sequence,
            "usage": _usage(stats),
        }

    async def events(self, job: Job, chunks: AsyncIterator[Chunk], stats: TokenStats) -> AsyncIterator[bytes]:
        start = {**self.head(), "content": [], "stop_reason": None, "stop_sequence": None, "usage": _usage(stats)}
        yield _event({"type": "message_start", "message": start})
        blocks = _Blocks()
        finish = None
        async for chunk in chunks:
            choice = choice_of(chunk)
            finish = choice.get("finish_reason") or finish
            for data in blocks.take(choice.get("delta") or {}):
                yield data
        for data in blocks.close():
            yield data
        stop, sequence = self._stop(finish)
        delta = {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": sequence},
                 "usage": {"output_tokens": stats.completion_tokens}}  # fmt: skip
        yield _event(delta)
        yield _event({"type": "message_stop"})

    def error_event(self, error: ApiError) -> bytes:
        return _event(error_body(error.status, error.message))


class _Blocks:
    """Content blocks as the chunks open them: text, then a tool_use block per tool call."""

    def __init__(self) -> None:
        self.index = -1
        self.open: str | int | None = None  # "text", a tool call's index, or nothing

    def take(self, delta: dict[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        if delta.get("content"):
            if self.open != "text":
                events += self._start({"type": "text", "text": ""}, "text")
            events.append(self._delta({"type": "text_delta", "text": delta["content"]}))
        for call in delta.get("tool_calls") or []:
            number = call.get("index", 0)
            if self.open != number:
                events += self._start({**_tool_use(call), "input": {}}, number)
            arguments = (call.get("function") or {}).get("arguments") or ""
            if arguments:
                events.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return events

    def close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        return [_event({"type": "content_block_stop", "index": self.index})]

    def _start(self, block: dict[str, Any], kind: str | int) -> list[bytes]:
        events = self.close()
        self.index += 1
        self.open = kind
        events.append(_event({"type": "content_block_start", "index": self.index,
                                                  "content_block": block}))  # fmt: skip
        return events

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _event({"type": "content_block_delta", "index": self.index, "delta": delta})


def _text_chunk(text: str, finish: str | None) -> Chunk:
    return {"choices": [{"delta": {"content": text}, "finish_reason": finish}]}


def _event(body: dict[str, Any]) -> bytes:
    """An Anthropic event: its name is its body's type."""
    return event(body, body["type"])
