"""A chat request's JSON schemas (response format, tools) checked and turned into grammars, off the event loop.

Two steps: on a worker thread, every schema is converted against one budget (grammar_limits.py); on the engine
thread, just before generating, llama.cpp's own parser reads each grammar that generation may use. It must:
llama-cpp-python hands a grammar that llama.cpp refuses on as a null pointer, and the process dies.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..http.errors import ApiError
from .grammar_limits import Budget, OverBudget, convert, invalid, too_large, unusable
from .offload import Offload
from .patterns import Unsupported

RESPONSE_SCHEMA = "response_format.json_schema.schema"
WHAT = "Turning the request's JSON schemas into grammars"
# Chat formats whose handler makes a grammar for whichever tool the model calls, not only a forced one.
TOOL_GRAMMAR_FORMATS = frozenset({"functionary", "functionary-v1", "functionary-v2", "chatml-function-calling"})


@dataclass
class ToolGrammar:
    """A tool's parameters as llama-cpp-python would turn them into a grammar, should generation use them."""

    param: str
    name: str
    grammar: str | None  # None: the converter fails, and llama-cpp-python falls back to any JSON
    problem: ApiError | None = None  # it would hang the converter or crash llama.cpp


@dataclass
class Grammars:
    """What the engine thread needs: keyword arguments for llama-cpp-python, and the grammars to try first."""

    arguments: dict[str, Any] = field(default_factory=dict)
    response: tuple[str, str] | None = None  # (parameter, GBNF)
    tools: list[ToolGrammar] = field(default_factory=list)
    forced: str | None = None


async def prepare_grammars(arguments: dict[str, Any], offload: Offload, timeout_s: float) -> Grammars:
    """Convert every schema against one budget on a worker thread (400 when over it); a response schema
    becomes the `grammar` argument. Tool parameters stay schemas: llama-cpp-python converts the ones it uses
    on the engine thread, the same conversion, bounded once it passed here."""
    if not _schemas(arguments):
        return Grammars()
    return await offload.run(partial(_grammars, arguments), timeout_s, WHAT)


def check_grammars(llama: Any, grammars: Grammars) -> None:
    """On the engine thread, which knows the chat handler: every grammar generation may use must pass
    llama.cpp's parser first (a 400 instead of a crash)."""
    every_tool = llama.chat_handler is None and llama.chat_format in TOOL_GRAMMAR_FORMATS
    used = [tool for tool in grammars.tools if every_tool or tool.name == grammars.forced]
    checks = [grammars.response] if grammars.response else []
    for tool in used:
        if tool.problem is not None:
            raise tool.problem
        if tool.grammar is not None:
            checks.append((tool.param, tool.grammar))
    _parse(llama, checks)


def _parse(llama: Any, checks: list[tuple[str, str]]) -> None:
    if not checks:
        return
    llama_cpp = importlib.import_module("llama_cpp")
    for param, grammar in checks:
        sampler = llama_cpp.llama_sampler_init_grammar(llama._model.vocab, grammar.encode("utf-8"), b"root")
        if not sampler:
            raise invalid(param, "llama.cpp cannot use the grammar made from this JSON schema")
        llama_cpp.llama_sampler_free(sampler)


def _schemas(arguments: dict[str, Any]) -> list[tuple[str, str | None, Any]]:
    """(parameter, tool name or None, schema) for every schema of the request."""
    tools = [tool["function"] for tool in arguments.get("tools") or [] if "function" in tool]
    schemas = [("tools", tool["name"], tool["parameters"]) for tool in tools]
    functions = arguments.get("functions") or []
    schemas += [("functions", function["name"], function["parameters"]) for function in functions]
    response_format = arguments.get("response_format") or {}
    if "schema" in response_format:
        schemas.insert(0, (RESPONSE_SCHEMA, None, response_format["schema"]))
    return schemas


def _grammars(arguments: dict[str, Any]) -> Grammars:
    """On a worker thread: too large is a 400 for any schema; unusable, for the response schema only (a tool's
    matters only if generation uses it, which the engine thread knows)."""
    budget, result = Budget(), Grammars(forced=_forced_tool(arguments))
    for param, name, schema in _schemas(arguments):
        try:
            grammar, problem = convert(schema, budget), None
        except OverBudget as exc:
            raise too_large(param, exc) from None
        except Unsupported as exc:
            grammar, problem = None, unusable(param, exc)
        if name is not None and problem is not None and name == result.forced:
            raise problem  # used whatever the chat format
        if name is not None:
            result.tools.append(ToolGrammar(param, name, grammar, problem))
        elif problem is not None or grammar is None:
            raise problem or unusable(param)
        else:
            result.response = (param, grammar)
            grammars = importlib.import_module("llama_cpp.llama_grammar")
            # Given as the grammar, not as response_format: llama-cpp-python would convert the schema again.
            result.arguments = {"response_format": None, "grammar": grammars.LlamaGrammar.from_string(grammar)}
    return result


def _forced_tool(arguments: dict[str, Any]) -> str | None:
    choice = arguments.get("tool_choice")
    if isinstance(choice, dict):
        return str(choice.get("function", {}).get("name"))
    call = arguments.get("function_call")
    return str(call.get("name")) if isinstance(call, dict) else None
