"""OpenAI request bodies, field for field from the API reference.

Every documented parameter is declared, so clients that send it are accepted; fields that are
not documented are rejected (extra="forbid"), as OpenAI does. Types are strict: "1" is not 1.
Whether a *value* is supported is decided in `sampling.py`, so the 400 can name the parameter; `only()`
narrows such a field's schema in the OpenAPI document to the values it accepts, so that a request valid
against the document is never refused (tests/runtime/test_v1_openapi.py checks the two agree).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue

Temperature = Annotated[float, Field(ge=0, le=2, description="Sampling temperature; 0 is greedy.")]
TopP = Annotated[float, Field(ge=0, le=1, description="Nucleus sampling: keep the top tokens of this mass.")]
Penalty = Annotated[float, Field(ge=-2, le=2)]
# JSON Schema's integer is any number without a fraction, 2.0 included (and so is a client's float): taken as 2.
# Constraints go before WHOLE, so that the document shows them as minimum and maximum.
WHOLE = BeforeValidator(lambda value: int(value) if isinstance(value, float) and value.is_integer() else value)
Integer = Annotated[int, WHOLE]
MaxTokens = Annotated[int, Field(ge=1, description="Most tokens to generate (capped by the server)."), WHOLE]
# Every container stops at its first bad item (fail_fast): validation runs on the event loop, and a 1 MB body of
# bad items would otherwise make hundreds of thousands of errors, seconds of work. Caps are OpenAI's unless noted.
MAX_MESSAGES = 2048
MAX_TOOLS = 128
MAX_LOGIT_BIAS = 1024  # a server limit: llama-cpp-python walks the whole map in Python for every token
MAX_EMBEDDING_INPUTS = 2048
MAX_STOP_CHARS = 256  # a server limit: every stop string is matched against the held-back text at every token
StopText = Annotated[str, Field(max_length=MAX_STOP_CHARS)]
Stop = StopText | Annotated[list[StopText], Field(max_length=4, fail_fast=True)]
Names = Annotated[dict[str, str], Field(fail_fast=True)]
Texts = Annotated[list[str], Field(fail_fast=True)]
TokenIds = Annotated[list[Integer], Field(fail_fast=True)]
TokenLists = Annotated[list[TokenIds], Field(fail_fast=True)]
Bias = Annotated[float, Field(ge=-100, le=100)]


def only(description: str, **accepted: Any) -> Any:
    """A parameter some of whose values this server refuses: unset by default, and JSON Schema keywords that
    admit only the values it accepts (keywords of one type leave the others alone: `maximum` leaves null)."""
    return Field(None, description=description, json_schema_extra=accepted)


JsonDict = dict[str, JsonValue]  # a JSON Schema fragment
NULL_ONLY: JsonDict = {"type": "null"}
TEXT: JsonDict = {"type": "string", "minLength": 1}
ONE_TEXT: JsonDict = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1}
TOKEN_IDS: JsonDict = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
NOT_RETURNED = "Log probabilities are not returned by this server"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Loose(BaseModel):
    """Objects whose inner shape we pass through or ignore (tools, metadata): unknown keys allowed."""

    model_config = ConfigDict(extra="allow", strict=True)


class StreamOptions(Strict):
    include_usage: bool | None = Field(None, description="Send a last chunk with token usage.")
    include_obfuscation: bool | None = Field(None, description="Accepted; chunks are never padded here.")


class JsonSchema(Strict):
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema", description="The JSON Schema the output follows.")
    strict: bool | None = None


class ResponseFormatText(Strict):
    type: Literal["text"]


class ResponseFormatJsonObject(Strict):
    type: Literal["json_object"]


class ResponseFormatJsonSchema(Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchema


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema, Field(discriminator="type")
]


class ContentPart(Loose):
    type: Literal["text", "image_url", "input_audio", "file", "refusal"] = Field(
        description="Only text (and refusal) parts are supported.", json_schema_extra={"enum": ["text", "refusal"]}
    )
    text: str | None = None
    refusal: str | None = None


class FunctionCall(Loose):
    name: str
    arguments: str


class ToolCall(Loose):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | Annotated[list[ContentPart], Field(fail_fast=True)] | None = None
    name: str | None = None
    tool_calls: Annotated[list[ToolCall], Field(fail_fast=True)] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = None
    refusal: str | None = None
    audio: dict[str, Any] | None = None


class FunctionDefinition(Loose):
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Loose):
    type: Literal["function", "custom"]
    function: FunctionDefinition | None = None


class FunctionName(Loose):
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="A function named in `tools`.")


class NamedToolChoice(Loose):
    type: Literal["function"]
    function: FunctionName


class CommonRequest(Strict):
    """Parameters shared by /v1/chat/completions and /v1/completions."""

    model: str = Field(description="A model id from GET /v1/models.")
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logit_bias: Annotated[dict[str, Bias], Field(max_length=MAX_LOGIT_BIAS, fail_fast=True)] | None = Field(
        None,
        description="Token id (of the model's vocabulary) -> bias from -100 to 100.",
        json_schema_extra={"propertyNames": {"pattern": "^(0|[1-9][0-9]{0,9})$"}},
    )
    max_tokens: MaxTokens | None = None
    n: Annotated[int, Field(ge=1, le=128), WHOLE] | None = only("Choices to generate: one per request here.", maximum=1)
    seed: Integer | None = Field(None, description="Same seed and parameters give the same output.")
    stop: Stop | None = Field(None, description="Up to 4 sequences where generation stops.")
    stream: bool | None = Field(None, description="Send tokens as server-sent events as they are generated.")
    stream_options: StreamOptions | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    user: str | None = Field(None, description="Accepted and ignored.")


# A named tool_choice names one of `tools`: the document says that tools are then sent (which one, it cannot).
NAMED_CHOICE_NEEDS_TOOLS: JsonDict = {
    "if": {"required": ["tool_choice"], "properties": {"tool_choice": {"type": "object"}}},
    "then": {"required": ["tools"], "properties": {"tools": {"type": "array", "minItems": 1}}},
}
# `tools` and the legacy `functions` together contradict each other (llama-cpp-python would drop one).
NOT_TOOLS_AND_FUNCTIONS: JsonDict = {
    "not": {"required": ["tools", "functions"], "properties": {"tools": {"type": "array", "minItems": 1},
                                                               "functions": {"type": "array", "minItems": 1}}},
}  # fmt: skip


class ChatCompletionRequest(CommonRequest):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"allOf": [NAMED_CHOICE_NEEDS_TOOLS, NOT_TOOLS_AND_FUNCTIONS]}
    )
    messages: Annotated[list[Message], Field(fail_fast=True)] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: MaxTokens | None = None
    response_format: ResponseFormat | None = None
    tools: Annotated[list[Tool], Field(max_length=MAX_TOOLS, fail_fast=True)] | None = only(
        "Functions the model may call (type `function` only).",
        items={
            "required": ["type", "function"],
            "properties": {
                "type": {"const": "function"},
                "function": {"type": "object"},
            },
        },
    )
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = only(
        "`none`, `auto`, or a function named in `tools` (not `required`).", **{"not": {"const": "required"}}
    )
    parallel_tool_calls: bool | None = None
    functions: Annotated[list[FunctionDefinition], Field(max_length=MAX_TOOLS, fail_fast=True)] | None = None
    function_call: Literal["none", "auto"] | FunctionName | None = None
    logprobs: bool | None = only(f"{NOT_RETURNED}: false or null only.", enum=[False, None])
    top_logprobs: Annotated[int, Field(ge=0, le=20), WHOLE] | None = only(f"{NOT_RETURNED}: 0 or null only.", maximum=0)
    metadata: Names | None = None
    store: bool | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    modalities: Annotated[list[Literal["text", "audio"]], Field(fail_fast=True)] | None = only(
        "Text only here.", items={"const": "text"}
    )
    audio: dict[str, Any] | None = only("Not supported (this server produces text): null only.", **NULL_ONLY)
    prediction: dict[str, Any] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    web_search_options: dict[str, Any] | None = only("Not supported (no web search): null only.", **NULL_ONLY)
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "in-memory", "24h"] | None = None
    prompt_cache_options: dict[str, Any] | None = Field(None, description="Accepted; llama.cpp reuses prompt prefixes.")
    moderation: dict[str, Any] | None = only("Not supported (no moderation): null only.", **NULL_ONLY)


class CompletionRequest(CommonRequest):
    prompt: str | Texts | TokenIds | TokenLists = Field(
        description="Text (or the model's token ids) to continue: one prompt per request.",
        json_schema_extra={"anyOf": [{"type": "string"}, ONE_TEXT, TOKEN_IDS, {**ONE_TEXT, "items": TOKEN_IDS}]},
    )
    best_of: Annotated[int, Field(ge=0, le=20), WHOLE] | None = only(
        "One candidate per request here: 0 or 1.", maximum=1
    )
    echo: bool | None = Field(None, description="Return the prompt before the completion.")
    logprobs: Annotated[int, Field(ge=0, le=5), WHOLE] | None = only(f"{NOT_RETURNED}: 0 or null only.", maximum=0)
    suffix: str | None = Field(None, description="Text after the completion: models with fill-in-the-middle tokens.")


class EmbeddingRequest(Strict):
    model: str = Field(description="A model id declared with `embeddings: true`.")
    input: str | Annotated[Texts, Field(max_length=MAX_EMBEDDING_INPUTS)] | TokenIds | TokenLists = Field(
        description=f"Text, or a list of up to {MAX_EMBEDDING_INPUTS} texts, to embed (not token ids).",
        json_schema_extra={"anyOf": [TEXT, {"type": "array", "items": TEXT, "minItems": 1,
                                            "maxItems": MAX_EMBEDDING_INPUTS}]},
    )  # fmt: skip
    dimensions: Annotated[int, Field(ge=1), WHOLE] | None = Field(
        None, description="The model's own vector size (models here do not shorten their vectors)."
    )
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None
