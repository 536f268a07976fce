"""Request models to llama-cpp-python keyword arguments; a 400 naming the parameter for values we cannot honour."""

from __future__ import annotations

from typing import Any

from menlo_cortex.cortexfile.schema.server import Limits

from ..http.errors import ApiError
from .requests import (
    ChatCompletionRequest,
    CommonRequest,
    CompletionRequest,
    FunctionDefinition,
    Message,
    NamedToolChoice,
    ResponseFormatJsonObject,
    ResponseFormatJsonSchema,
    Tool,
)

# OpenAI's defaults, not llama-cpp-python's (0.2 / 0.95): clients expect OpenAI behaviour.
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0
SEED_RANGE = 2**32  # llama.cpp seeds are uint32; OpenAI's are any integer


def unsupported(param: str, message: str) -> ApiError:
    return ApiError(400, f"Unsupported value for '{param}': {message}", param=param, code="unsupported_value")


def max_tokens(requested: int | None, limits: Limits) -> int:
    """Clamp to the server's cap; unset means the cap (llama.cpp also stops at the context's end)."""
    return limits.max_tokens if requested is None else min(requested, limits.max_tokens)


def common_arguments(request: CommonRequest, limits: Limits, requested_max: int | None) -> dict[str, Any]:
    if request.n not in (None, 1):
        raise unsupported("n", f"this server generates one choice per request, not {request.n}.")
    arguments: dict[str, Any] = {
        "max_tokens": max_tokens(requested_max, limits),
        "temperature": DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
        "top_p": DEFAULT_TOP_P if request.top_p is None else request.top_p,
        "stop": request.stop,
        "seed": None if request.seed is None else request.seed % SEED_RANGE,
        "presence_penalty": request.presence_penalty or 0.0,
        "frequency_penalty": request.frequency_penalty or 0.0,
        "stream": True,  # always: generation is consumed chunk by chunk so that it can stop between tokens
    }
    if request.logit_bias:
        arguments["logit_bias"] = _logit_bias(request.logit_bias)
    return arguments


def _logit_bias(bias: dict[str, float]) -> dict[int, float]:
    try:
        return {int(token): value for token, value in bias.items()}
    except ValueError:
        raise ApiError(
            400,
            "Invalid value for 'logit_bias': keys must be token ids (integers as strings).",
            param="logit_bias",
            code="invalid_value",
        ) from None


def chat_arguments(request: ChatCompletionRequest, limits: Limits) -> dict[str, Any]:
    _reject_unsupported_chat(request)
    requested = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
    arguments = common_arguments(request, limits, requested)
    arguments["messages"] = [_message(message, index) for index, message in enumerate(request.messages)]
    arguments["response_format"] = _response_format(request)
    if request.tools:
        arguments["tools"] = [_tool(tool) for tool in request.tools]
    if request.functions:
        arguments["functions"] = [_function(function) for function in request.functions]
    choice = request.tool_choice if request.tool_choice is not None else request.function_call
    if choice is not None:
        arguments["tool_choice" if request.tool_choice is not None else "function_call"] = (
            choice if isinstance(choice, str | dict) else choice.model_dump()
        )
    return arguments


def _reject_unsupported_chat(request: ChatCompletionRequest) -> None:
    if request.logprobs:
        raise unsupported("logprobs", "log probabilities are not returned by this server.")
    if request.top_logprobs:
        raise unsupported("top_logprobs", "log probabilities are not returned by this server.")
    if request.modalities and "audio" in request.modalities:
        raise unsupported("modalities", "this server produces text only.")
    if request.audio is not None:
        raise unsupported("audio", "this server produces text only.")
    if request.moderation is not None:
        raise unsupported("moderation", "this server runs no moderation.")
    if request.web_search_options is not None:
        raise unsupported("web_search_options", "this server has no web search.")
    _reject_unsupported_tools(request)


def _reject_unsupported_tools(request: ChatCompletionRequest) -> None:
    if request.tool_choice == "required":
        raise unsupported("tool_choice", "`required` is not supported; name the function to force a call.")
    if request.tools and any(tool.type != "function" for tool in request.tools):
        raise unsupported("tools", "only tools of type `function` are supported.")
    if request.tools and request.functions:
        raise unsupported("functions", "send `tools` or the legacy `functions`, not both.")
    for index, tool in enumerate(request.tools or []):
        if tool.function is None:
            raise ApiError(
                400, f"Missing required parameter: 'tools[{index}].function'.", param=f"tools[{index}].function"
            )
    if isinstance(request.tool_choice, NamedToolChoice):
        name = request.tool_choice.function.name
        if name not in {tool.function.name for tool in request.tools or [] if tool.function}:
            raise ApiError(
                400,
                f"Invalid value for 'tool_choice': no tool named `{name}` in 'tools'.",
                param="tool_choice",
                code="invalid_value",
            )


def _function(function: FunctionDefinition) -> dict[str, Any]:
    """Omitted parameters mean "no arguments" (OpenAI); llama-cpp-python needs them spelled out."""
    result = function.model_dump(exclude_none=True)
    result.setdefault("parameters", {"type": "object", "properties": {}})
    return result  # its parameters are checked off the event loop (grammars.py): a forced call makes a grammar


def _tool(tool: Tool) -> dict[str, Any]:
    result = tool.model_dump(exclude_none=True)
    if tool.function is not None:
        result["function"] = _function(tool.function)
    return result


def _response_format(request: ChatCompletionRequest) -> dict[str, Any] | None:
    fmt = request.response_format
    if isinstance(fmt, ResponseFormatJsonObject):
        return {"type": "json_object"}
    if isinstance(fmt, ResponseFormatJsonSchema):
        schema = fmt.json_schema.schema_
        if not schema:
            return {"type": "json_object"}
        # Checked and turned into a grammar off the event loop (grammars.py).
        # llama-cpp-python turns {"type": "json_object", "schema": ...} into a grammar for that schema.
        return {"type": "json_object", "schema": schema}
    return None


def _message(message: Message, index: int) -> dict[str, Any]:
    """OpenAI message to llama-cpp-python's: content parts flattened to text (chat templates expect text)."""
    result = message.model_dump(exclude_none=True)
    result.setdefault("content", "")  # chat formats concatenate content; an assistant's tool call has none
    if message.role == "developer":
        result["role"] = "system"  # OpenAI's newer name for system; templates know only `system`
    if isinstance(message.content, list):
        texts = []
        for number, part in enumerate(message.content):
            if part.type not in ("text", "refusal"):
                param = f"messages[{index}].content[{number}]"
                raise unsupported(param, f"content of type `{part.type}` is not supported; send text.")
            texts.append(part.text or part.refusal or "")
        result["content"] = "\n".join(texts)
    return result


def completion_arguments(request: CompletionRequest, limits: Limits) -> dict[str, Any]:
    if request.best_of not in (None, 0, 1):
        raise unsupported("best_of", f"this server generates one candidate per request, not {request.best_of}.")
    if request.logprobs:
        raise unsupported("logprobs", "log probabilities are not returned by this server.")
    arguments = common_arguments(request, limits, request.max_tokens)
    arguments["prompt"] = _single_prompt(request.prompt)
    arguments["echo"] = bool(request.echo)
    if request.suffix:  # an empty one is no suffix: no fill in the middle asked
        arguments["suffix"] = request.suffix
    return arguments


def _single_prompt(prompt: str | list[str] | list[int] | list[list[int]]) -> str | list[int]:
    if isinstance(prompt, str):
        return prompt
    if not prompt:
        raise ApiError(400, "Invalid value for 'prompt': it is empty.", param="prompt", code="invalid_value")
    if any(isinstance(item, list) and not item for item in prompt):
        raise ApiError(400, "Invalid value for 'prompt': a token list is empty.", param="prompt", code="invalid_value")
    if all(isinstance(item, int) for item in prompt):
        return [item for item in prompt if isinstance(item, int)]
    if len(prompt) == 1:
        only = prompt[0]
        return only if isinstance(only, str) else list(only)  # type: ignore[arg-type]
    raise unsupported("prompt", "send one prompt per request (batches of prompts are not supported).")


def check_token_ids(arguments: dict[str, Any], vocabulary: int) -> None:
    """Token ids outside the vocabulary crash llama_decode; called on the engine thread, where the size is known."""
    prompt = arguments.get("prompt")
    if isinstance(prompt, list):
        _check_ids("prompt", prompt, vocabulary)
    _check_ids("logit_bias", list(arguments.get("logit_bias") or {}), vocabulary)


def _check_ids(param: str, ids: list[int], vocabulary: int) -> None:
    bad = next((token for token in ids if not 0 <= token < vocabulary), None)
    if bad is not None:
        raise ApiError(
            400,
            f"Invalid value for '{param}': token id {bad} is outside the vocabulary (0 to {vocabulary - 1}).",
            param=param,
            code="invalid_value",
        )
