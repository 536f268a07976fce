"""Anthropic Messages request bodies (POST /v1/messages), field for field from Anthropic's API reference.

As for the OpenAI bodies (requests.py): every documented parameter is declared, unknown ones are refused, types
are strict, and lists stop at their first bad item. What the server cannot honour is refused in messages.py,
naming the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .requests import MAX_MESSAGES, MAX_STOP_CHARS, MAX_TOOLS, WHOLE, Loose, Strict

MAX_BLOCKS = 1024  # content blocks of one message


class TextBlock(Loose):
    type: Literal["text"]
    text: str


class ImageBlock(Loose):
    type: Literal["image", "document", "search_result", "thinking", "redacted_thinking", "server_tool_use"]


class ToolUseBlock(Loose):
    type: Literal["tool_use"]
    id: str = Field(max_length=256)
    name: str = Field(max_length=128)
    input: dict[str, Any]


class ToolResultBlock(Loose):
    type: Literal["tool_result"]
    tool_use_id: str = Field(max_length=256)
    content: str | Annotated[list[TextBlock | ImageBlock], Field(max_length=MAX_BLOCKS, fail_fast=True)] | None = None
    is_error: bool | None = None


Block = Annotated[TextBlock | ToolUseBlock | ToolResultBlock | ImageBlock, Field(discriminator="type")]
Blocks = Annotated[list[Block], Field(max_length=MAX_BLOCKS, fail_fast=True)]


class InputMessage(Strict):
    role: Literal["user", "assistant"]
    content: str | Blocks


class ToolDefinition(Loose):
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None


class ToolChoice(Strict):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    disable_parallel_tool_use: bool | None = None


class Metadata(Strict):
    user_id: str | None = Field(None, max_length=256)


class JsonOutputFormat(Strict):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema", description="The JSON Schema the output follows.")


class OutputConfig(Strict):
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = Field(None, description="Accepted and ignored.")
    format: JsonOutputFormat | None = None


class MessagesRequest(Strict):
    model: str = Field(description="A model id from GET /v1/models.")
    max_tokens: Annotated[int, Field(ge=1), WHOLE] = Field(
        description="Most tokens to generate (capped by the server)."
    )
    messages: Annotated[list[InputMessage], Field(fail_fast=True)] = Field(min_length=1, max_length=MAX_MESSAGES)
    system: str | Annotated[list[TextBlock], Field(max_length=MAX_BLOCKS, fail_fast=True)] | None = None
    stop_sequences: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]], Field(max_length=4)] | None
    ) = Field(None, description="Up to 4 sequences where generation stops (a server limit).")
    stream: bool | None = None
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=0), WHOLE] | None = None
    tools: Annotated[list[ToolDefinition], Field(max_length=MAX_TOOLS, fail_fast=True)] | None = None
    tool_choice: ToolChoice | None = None
    metadata: Metadata | None = None
    thinking: dict[str, Any] | None = None
    output_config: OutputConfig | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
    container: str | None = None
    mcp_servers: list[dict[str, Any]] | None = None
    # Accepted and ignored: prompt prefixes are reused by themselves here, and there is one place and one speed.
    cache_control: dict[str, Any] | None = None
    diagnostics: dict[str, Any] | None = None
    inference_geo: str | None = None
    speed: Literal["standard", "fast"] | None = None
    user_profile_id: str | None = None
    workspace_id: str | None = None


class CountTokensRequest(Strict):
    model: str
    messages: Annotated[list[InputMessage], Field(fail_fast=True)] = Field(min_length=1, max_length=MAX_MESSAGES)
    system: str | Annotated[list[TextBlock], Field(max_length=MAX_BLOCKS, fail_fast=True)] | None = None
    tools: Annotated[list[ToolDefinition], Field(max_length=MAX_TOOLS, fail_fast=True)] | None = None
    tool_choice: ToolChoice | None = None
    thinking: dict[str, Any] | None = None
