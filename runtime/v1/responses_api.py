"""OpenAI's Responses API on the chat completion machinery: a request (with the stored conversation it continues)
becomes the chat request it means, and the answer is shaped as a response, whole or as its typed events, and kept
when it is stored."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ..conversations.items import chat_messages, chat_tools
from ..http.errors import ApiError
from ..models.engine import Chunk
from ..models.generation import TokenStats
from .generate import Job
from .requests import ChatCompletionRequest
from .responses import Reply, choice_of
from .responses_api_request import (
    IGNORED_INCLUDES,
    FunctionChoice,
    FunctionTool,
    MessageItem,
    ResponseRequest,
    UnsupportedChoice,
    UnsupportedItem,
    UnsupportedPart,
    UnsupportedTool,
)
from .sampling import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, unsupported
from .streaming import event
from .validation import translated

Keep = Callable[[dict[str, Any], list[dict[str, Any]]], Awaitable[bool]]  # (response, input items) -> stored?


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def checked_input(body: ResponseRequest) -> list[dict[str, Any]]:
    """The request's input as items (text is one user message), each with an id, as input_items lists them and
    as they are stored: their declared fields only (a client's extra keys are neither read nor kept). ApiError
    naming the first field, item or part this server cannot honour."""
    _refuse_unsupported(body)
    if isinstance(body.input, str):
        return [_listed({"type": "message", "role": "user", "content": body.input})]
    items = []
    for index, item in enumerate(body.input):
        where = f"input[{index}]"
        if isinstance(item, UnsupportedItem):
            raise unsupported(f"{where}.type", f"`{item.type}` items are not supported; send messages and "
                                               "function calls and their outputs.")  # fmt: skip
        for number, part in enumerate(_parts(item)):
            if isinstance(part, UnsupportedPart):
                raise unsupported(f"{where}.content[{number}]", f"`{part.type}` content is not read here; send text.")
        items.append(_listed(_declared(item)))
    return items


def _declared(model: BaseModel) -> dict[str, Any]:
    """A model's own fields, JSON-safe (a number too large for a float becomes null), its parts' likewise."""
    fields = type(model).model_fields
    declared = {key: value for key, value in model.model_dump(mode="json", exclude_none=True).items() if key in fields}
    for key in ("content", "output"):
        parts = getattr(model, key, None) if key in fields else None  # a client's extra `output` is not read
        if isinstance(parts, list):
            declared[key] = [_declared(part) for part in parts]
    return declared


_ID_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def _listed(item: dict[str, Any]) -> dict[str, Any]:
    """An input item as input_items lists it: with an id and a status, a message's text as a content part."""
    listed = {**item, "id": new_id(_ID_PREFIXES[item["type"]]), "status": "completed"}
    if isinstance(item.get("content"), str):
        kind = "output_text" if item["role"] == "assistant" else "input_text"
        listed["content"] = [{"type": kind, "text": item["content"]}]
    return listed


def _parts(item: Any) -> list[Any]:
    content = item.content if isinstance(item, MessageItem) else getattr(item, "output", None)
    return content if isinstance(content, list) else []


def chat_request(
    body: ResponseRequest, history: list[dict[str, Any]], items: list[dict[str, Any]]
) -> ChatCompletionRequest:
    """The chat request a response means: its instructions, the stored conversation's items, its own (checked)."""
    system = [{"role": "system", "content": body.instructions}] if body.instructions else []
    chat: dict[str, Any] = {"model": body.model, "messages": system + chat_messages(history + items)}
    chat["max_tokens"] = body.max_output_tokens
    sampling = {"temperature": body.temperature, "top_p": body.top_p, "parallel_tool_calls": body.parallel_tool_calls}
    chat |= {key: value for key, value in sampling.items() if value is not None}
    if body.tools:
        chat["tools"] = chat_tools([_declared(tool) for tool in body.tools])
    if body.tool_choice == "none":
        chat["tool_choice"] = "none"
    elif isinstance(body.tool_choice, FunctionChoice):
        chat["tool_choice"] = {"type": "function", "function": {"name": body.tool_choice.name}}
    chat["response_format"] = _response_format(body)
    return translated(ChatCompletionRequest, chat)


def _response_format(body: ResponseRequest) -> dict[str, Any] | None:
    fmt = body.text.format if body.text else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": fmt.name, "schema": fmt.schema_}}


def _refuse_unsupported(body: ResponseRequest) -> None:
    refused = {
        "background": ("background mode is not supported: leave it out.", bool(body.background)),
        "conversation": ("conversations objects are not supported: use previous_response_id.",
                         body.conversation is not None),
        "prompt": ("prompt templates are not supported: send the input.", body.prompt is not None),
        "context_management": ("context management is not supported.", body.context_management is not None),
        "moderation": ("this server runs no moderation.", body.moderation is not None),
        "image": ("this server produces text only.", body.image is not None),
        "top_logprobs": ("log probabilities are not returned by this server.", body.top_logprobs),
        "truncation": ("`auto` is not supported: a conversation longer than the context is a 400, never cut.",
                       body.truncation == "auto"),
        "tool_choice": ("`required` is not supported; name the function to force a call.",
                        body.tool_choice == "required"),
    }  # fmt: skip
    for param, (message, present) in refused.items():
        if present:
            raise unsupported(param, message)
    reasoning = body.reasoning
    if reasoning is not None and (reasoning.effort not in (None, "none", "minimal") or reasoning.model_extra):
        raise unsupported("reasoning", "this server's models do not reason on request; leave it out.")
    _refuse_tools(body)
    for index, name in enumerate(body.include or []):
        if name not in IGNORED_INCLUDES:
            raise unsupported(f"include[{index}]", f"`{name}` cannot be included by this server.")


def _refuse_tools(body: ResponseRequest) -> None:
    for index, tool in enumerate(body.tools or []):
        if isinstance(tool, UnsupportedTool):
            raise unsupported(f"tools[{index}].type", f"`{tool.type}` tools do not run here; declare functions.")
    if isinstance(body.tool_choice, UnsupportedChoice):
        raise unsupported("tool_choice.type", f"`{body.tool_choice.type}` is not supported; name a function.")
    if isinstance(body.tool_choice, FunctionChoice):
        names = {tool.name for tool in body.tools or [] if isinstance(tool, FunctionTool)}
        if body.tool_choice.name not in names:
            raise ApiError(400, f"Invalid value for 'tool_choice': no function named `{body.tool_choice.name}` in "
                           "'tools'.", param="tool_choice", code="invalid_value")  # fmt: skip


def _usage(stats: TokenStats) -> dict[str, Any]:
    return {
        "input_tokens": stats.prompt_tokens,
        "input_tokens_details": {"cached_tokens": stats.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": stats.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


@dataclass
class Responses:
    """The Responses API's shapes: a response object, or its events (created, in_progress, then per output item:
    added, deltas, done; then completed or incomplete), each with its sequence number. The response is kept
    (`keep`) before the client learns it is complete, so that it can be continued at once."""

    request: ResponseRequest
    keep: Keep | None
    items: list[dict[str, Any]]  # this request's input items, kept with the response
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))
    call_ids: dict[int, str] = field(default_factory=dict)
    sequence: int = 0

    def watch(self, chunks: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
        return chunks

    def response(self, status: str, output: list[dict[str, Any]], stats: TokenStats | None) -> dict[str, Any]:
        body = self.request
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {
            "id": self.id, "object": "response", "created_at": self.created_at, "status": status,
            "completed_at": int(time.time()) if status == "completed" else None, "background": False,
            "error": None, "incomplete_details": incomplete, "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens, "max_tool_calls": body.max_tool_calls, "model": body.model,
            "output": output, "parallel_tool_calls": body.parallel_tool_calls is not False,
            "previous_response_id": body.previous_response_id, "reasoning": {"effort": None, "summary": None},
            "store": self.keep is not None and body.store is not False,
            "temperature": DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
            "top_p": DEFAULT_TOP_P if body.top_p is None else body.top_p,
            "text": {"format": body.text.format.model_dump(mode="json", by_alias=True) if body.text and body.text.format
                     else {"type": "text"}},
            "tool_choice": self._tool_choice(), "tools": [_declared(tool) for tool in body.tools or []],
            "truncation": "disabled", "usage": _usage(stats) if stats else None, "metadata": body.metadata or {},
            "user": body.user, "prompt_cache_key": body.prompt_cache_key, "safety_identifier": body.safety_identifier,
        }  # fmt: skip

    def _tool_choice(self) -> Any:
        choice = self.request.tool_choice
        return choice if isinstance(choice, str) else choice.model_dump() if choice else "auto"

    async def body(self, job: Job, reply: Reply, stats: TokenStats) -> dict[str, Any]:
        status = "incomplete" if reply.finish_reason == "length" else "completed"
        output = [self.message_item(reply.text, status)] if reply.text else []
        output += [self.call_item(index, call, status) for index, call in sorted(reply.tool_calls.items())]
        return await self._finish(self.response(status, output, stats))

    async def _finish(self, response: dict[str, Any]) -> dict[str, Any]:
        if response["store"] and self.keep is not None:
            response["store"] = await self.keep(response, self.items)
        return response

    def message_item(self, text: str, status: str, item_id: str | None = None) -> dict[str, Any]:
        return {"id": item_id or new_id("msg"), "type": "message", "status": status, "role": "assistant",
                "content": [_text_part(text)] if text else []}  # fmt: skip

    def call_item(self, index: int, call: dict[str, Any], status: str, item_id: str | None = None) -> dict[str, Any]:
        function = call.get("function") or {}
        return {"id": item_id or new_id("fc"), "type": "function_call", "status": status,
                "call_id": self._call_id(index, call.get("id")), "name": function.get("name") or "",
                "arguments": function.get("arguments") or ""}  # fmt: skip

    def _call_id(self, index: int, given: str | None) -> str:
        if index not in self.call_ids:
            self.call_ids[index] = given if given and given.startswith("call_") else new_id("call")
        return self.call_ids[index]

    def event(self, kind: str, **fields: Any) -> bytes:
        self.sequence += 1
        return event({"type": kind, "sequence_number": self.sequence - 1, **fields})

    async def events(self, job: Job, chunks: AsyncIterator[Chunk], stats: TokenStats) -> AsyncIterator[bytes]:
        yield self.event("response.created", response=self.response("in_progress", [], None))
        yield self.event("response.in_progress", response=self.response("in_progress", [], None))
        output = _Output(self)
        finish = None
        async for chunk in chunks:
            choice = choice_of(chunk)
            finish = choice.get("finish_reason") or finish
            for data in output.take(choice.get("delta") or {}):
                yield data
        status = "incomplete" if finish == "length" else "completed"
        for data in output.close(status):
            yield data
        final = await self._finish(self.response(status, output.items, stats))
        yield self.event(f"response.{status}", response=final)

    def error_event(self, error: ApiError) -> bytes:
        return self.event("error", code=error.code, message=error.message, param=error.param)


class _Output:
    """Output items as the chunks open them: a message for text, a function_call per tool call."""

    def __init__(self, responses: Responses) -> None:
        self.responses = responses
        self.items: list[dict[str, Any]] = []
        self.open: str | int | None = None  # "text", a tool call's index, or nothing
        self.text = ""  # the open message's text so far

    def take(self, delta: dict[str, Any]) -> list[bytes]:
        events: list[bytes] = []
        if delta.get("content"):
            if self.open != "text":
                events += self._add(self.responses.message_item("", "in_progress"), "text")
                events.append(self._event("response.content_part.added", content_index=0, part=_text_part("")))
            self.text += delta["content"]
            events.append(self._event("response.output_text.delta", content_index=0, delta=delta["content"],
                                      logprobs=[]))  # fmt: skip
        for call in delta.get("tool_calls") or []:
            index = call.get("index") or 0
            if self.open != index:
                events += self._add(self.responses.call_item(index, call, "in_progress") | {"arguments": ""}, index)
            arguments = (call.get("function") or {}).get("arguments") or ""
            if arguments:
                self.items[-1]["arguments"] += arguments
                events.append(self._event("response.function_call_arguments.delta", delta=arguments))
        return events

    def close(self, status: str = "completed") -> list[bytes]:
        if self.open is None:
            return []
        item, events = self.items[-1], []
        if self.open == "text":
            text, self.text = self.text, ""
            item |= {"status": status, "content": [_text_part(text)]}
            events.append(self._event("response.output_text.done", content_index=0, text=text, logprobs=[]))
            events.append(self._event("response.content_part.done", content_index=0, part=_text_part(text)))
        else:
            item["status"] = status
            events.append(self._event("response.function_call_arguments.done", arguments=item["arguments"],
                                      name=item["name"]))  # fmt: skip
        self.open = None
        events.append(self.responses.event("response.output_item.done", output_index=len(self.items) - 1, item=item))
        return events

    def _add(self, item: dict[str, Any], kind: str | int) -> list[bytes]:
        events = self.close()
        self.items.append(item)
        self.open = kind
        events.append(self.responses.event("response.output_item.added", output_index=len(self.items) - 1, item=item))
        return events

    def _event(self, kind: str, **fields: Any) -> bytes:
        item = self.items[-1]
        return self.responses.event(kind, item_id=item["id"], output_index=len(self.items) - 1, **fields)
