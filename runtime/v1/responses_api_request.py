"""OpenAI Responses request bodies (POST /v1/responses), field for field from the API reference.

As for the other bodies (requests.py): every documented parameter is declared, unknown ones are refused, types
are strict, lists stop at their first bad item. Items and tools of kinds this server cannot run (hosted tools,
images, files, reasoning) parse as `Unsupported*` so that responses_api.py refuses them naming the field."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag

from .requests import (
    MAX_MESSAGES,
    MAX_TOOLS,
    NAMED_CHOICE_NEEDS_TOOLS,
    NOT_RETURNED,
    NULL_ONLY,
    WHOLE,
    Loose,
    MaxTokens,
    Strict,
    Temperature,
    TopP,
    only,
)

MAX_PARTS = 1024  # content parts of one item
IGNORED_INCLUDES = ("reasoning.encrypted_content",)  # accepted: there is nothing to include (no reasoning items)
# OpenAI's caps: 16 pairs, keys of 64 characters, values of 512.
Metadata = Annotated[dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]],
                     Field(max_length=16, fail_fast=True)]  # fmt: skip
FUNCTION_NAME = r"^[A-Za-z0-9_-]+$"
RESPONSE_ID = r"^resp_[A-Za-z0-9]{1,64}$"
CallId = Annotated[str, Field(min_length=1, max_length=256)]


def _kind(known: tuple[str, ...], default: str | None = None) -> Discriminator:
    """A union tagged by `type`: the known kinds, `unsupported` for any other (refused later, by name)."""

    def tag(value: Any) -> str:
        kind = value.get("type", default) if isinstance(value, dict) else getattr(value, "type", default)
        return kind if kind in known else "unsupported"

    return Discriminator(tag)


class InputText(Loose):
    type: Literal["input_text", "output_text"]
    text: str


class Refusal(Loose):
    type: Literal["refusal"]
    refusal: str


class UnsupportedPart(Loose):
    type: str = Field(description="input_image, input_file and input_audio parts are not read by this server.")


Part = Annotated[
    Annotated[InputText, Tag("input_text")]
    | Annotated[InputText, Tag("output_text")]
    | Annotated[Refusal, Tag("refusal")]
    | Annotated[UnsupportedPart, Tag("unsupported")],
    _kind(("input_text", "output_text", "refusal")),
]
Parts = Annotated[list[Part], Field(max_length=MAX_PARTS, fail_fast=True)]


class MessageItem(Loose):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | Parts


class FunctionCallItem(Loose):
    type: Literal["function_call"]
    call_id: CallId
    name: str = Field(max_length=128)
    arguments: str


class FunctionCallOutputItem(Loose):
    type: Literal["function_call_output"]
    call_id: CallId
    output: str | Parts


class UnsupportedItem(Loose):
    type: str = Field(description="Reasoning, item references and hosted tools' items are not supported here.")


Item = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[UnsupportedItem, Tag("unsupported")],
    _kind(("message", "function_call", "function_call_output"), default="message"),
]


class FunctionTool(Loose):
    type: Literal["function"]
    name: str = Field(max_length=64, pattern=FUNCTION_NAME)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class UnsupportedTool(Loose):
    type: str = Field(description="Hosted tools (web search, file search, ...) do not run here.")


ToolParam = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[UnsupportedTool, Tag("unsupported")], _kind(("function",))
]


class FunctionChoice(Strict):
    type: Literal["function"]
    name: str = Field(max_length=64, pattern=FUNCTION_NAME)


class UnsupportedChoice(Loose):
    type: str


ToolChoice = Annotated[
    Annotated[FunctionChoice, Tag("function")] | Annotated[UnsupportedChoice, Tag("unsupported")],
    _kind(("function",)),
]


class FormatText(Strict):
    type: Literal["text"]


class FormatJsonObject(Strict):
    type: Literal["json_object"]


class FormatJsonSchema(Strict):
    type: Literal["json_schema"]
    name: str = Field(max_length=64, pattern=FUNCTION_NAME)
    schema_: dict[str, Any] = Field(alias="schema", description="The JSON Schema the output follows.")
    description: str | None = None
    strict: bool | None = None


class TextConfig(Strict):
    format: Annotated[FormatText | FormatJsonObject | FormatJsonSchema, Field(discriminator="type")] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(Loose):
    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra={"additionalProperties": False})
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = only(
        "These models do not reason on request: none, minimal or null only.", enum=["none", "minimal", None]
    )


class StreamOptions(Strict):
    include_obfuscation: bool | None = None


class ResponseRequest(Strict):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=NAMED_CHOICE_NEEDS_TOOLS)
    model: str = Field(description="A model id from GET /v1/models.")
    input: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[Item], Field(min_length=1, max_length=MAX_MESSAGES - 1, fail_fast=True)]
    ) = Field(description="Text, or a list of message, function_call and function_call_output items.")
    instructions: str | None = Field(None, description="A system message for this response (not carried over).")
    previous_response_id: str | None = Field(
        None, pattern=RESPONSE_ID, description="Continue the conversation of a response stored with `store`."
    )
    store: bool | None = Field(None, description="Keep the response for previous_response_id (when the server does).")
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_output_tokens: MaxTokens | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    tools: Annotated[list[ToolParam], Field(max_length=MAX_TOOLS, fail_fast=True)] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoice | None = only(
        "`none`, `auto`, or a function named in `tools` (not `required`).", **{"not": {"const": "required"}}
    )
    parallel_tool_calls: bool | None = None
    max_tool_calls: Annotated[int, Field(ge=1), WHOLE] | None = None
    text: TextConfig | None = None
    metadata: Metadata | None = None
    reasoning: Reasoning | None = None
    truncation: Literal["auto", "disabled"] | None = only(
        "`disabled` only: a conversation longer than the context is a 400, never cut.", enum=["disabled", None]
    )
    include: Annotated[list[str], Field(max_length=32, fail_fast=True)] | None = only(
        "Nothing more can be included here (no reasoning items are made).", items={"enum": list(IGNORED_INCLUDES)}
    )
    top_logprobs: Annotated[int, Field(ge=0, le=20), WHOLE] | None = only(f"{NOT_RETURNED}: 0 or null only.", maximum=0)
    background: bool | None = only("Background mode is not supported: false or null only.", enum=[False, None])
    conversation: str | dict[str, Any] | None = only("Not supported: use previous_response_id.", **NULL_ONLY)
    prompt: dict[str, Any] | None = only("Prompt templates are not supported: null only.", **NULL_ONLY)
    context_management: list[dict[str, Any]] | None = only("Not supported: null only.", **NULL_ONLY)
    moderation: dict[str, Any] | None = only("Not supported (no moderation): null only.", **NULL_ONLY)
    image: dict[str, Any] | None = only("Not supported (this server produces text): null only.", **NULL_ONLY)
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: dict[str, Any] | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    user: str | None = None
    access_programs: dict[str, Any] | None = None
    background_options: dict[str, Any] | None = None
