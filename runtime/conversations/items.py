"""Responses API items (as validated and stored: plain dicts) as the chat messages they mean: the one translation
the runtime's prompt and `cortex data export` share."""

from __future__ import annotations

import json
from typing import Any

from .store import StoredResponse

TEXT_PARTS = {"input_text": "text", "output_text": "text", "refusal": "refusal"}


def chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages in order; a function call joins the assistant message before it (or starts one), so that a
    turn's text and its calls are one message; a call's output is a `tool` message."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item["role"], "content": text_of(item.get("content"))})
        elif kind == "function_call":
            _assistant_turn(messages).setdefault("tool_calls", []).append(_tool_call(item))
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text_of(item["output"])})
    return messages


def text_of(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(str(part.get(TEXT_PARTS.get(part.get("type", ""), "text")) or "") for part in content)


def _assistant_turn(messages: list[dict[str, Any]]) -> dict[str, Any]:
    if not messages or messages[-1]["role"] != "assistant":
        messages.append({"role": "assistant", "content": ""})
    return messages[-1]


def _tool_call(item: dict[str, Any]) -> dict[str, Any]:
    function = {"name": item["name"], "arguments": item.get("arguments") or "{}"}
    return {"id": item["call_id"], "type": "function", "function": function}


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Responses API's function tools (flat) in the chat shape (nested under `function`)."""
    return [
        {"type": "function", "function": {key: tool[key] for key in ("name", "description", "parameters", "strict")
                                          if tool.get(key) is not None}}
        for tool in tools
        if tool.get("type") == "function"
    ]  # fmt: skip


def training_example(conversation: list[StoredResponse]) -> dict[str, Any]:
    """A stored conversation (StoredResponse, first first) as one fine-tuning example: the last response's
    instructions as the system message, every turn's input and output as chat messages, its function tools."""
    last = conversation[-1].body
    messages = [{"role": "system", "content": last["instructions"]}] if last.get("instructions") else []
    for response in conversation:
        messages += chat_messages(response.input_items + response.output_items)
    example: dict[str, Any] = {"messages": messages}
    if tools := chat_tools(last.get("tools") or []):
        example["tools"] = tools
    return example


def as_json_line(example: dict[str, Any]) -> str:
    return json.dumps(example, ensure_ascii=False, separators=(",", ":"))
