"""JSON schemas that llama.cpp must turn into grammars: refused when it cannot, or when the grammar would be huge."""

from __future__ import annotations

import json
import re
from typing import Any

from ..http.errors import ApiError

MAX_SCHEMA_BOUND = 4096
REPETITION = re.compile(r"\{\s*\d*\s*(?:,\s*\d*\s*)?\}")
BOUND_KEYWORDS = {"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"}


def check_schema(schema: dict[str, Any]) -> None:
    """llama-cpp-python silently falls back to any JSON for a schema it cannot convert; refuse instead."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    param = "response_format.json_schema.schema"
    check_bounds(schema, param)
    try:
        json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises many kinds (KeyError, ValueError, RecursionError...)
        raise ApiError(
            400,
            f"Invalid value for '{param}': it cannot be turned into a grammar: {exc!r}",
            param=param,
            code="invalid_value",
        ) from None


def check_bounds(schema: object, param: str) -> None:
    """A grammar spells repetitions out: {"maxLength": 10**9} would be gigabytes of grammar."""
    if _largest_bound(schema) > MAX_SCHEMA_BOUND:
        raise ApiError(
            400,
            f"Invalid value for '{param}': length and item bounds above {MAX_SCHEMA_BOUND} are not "
            "supported in JSON schemas.",
            param=param,
            code="invalid_value",
        )


def _largest_bound(node: object) -> int:
    if isinstance(node, dict):
        own = [v for k, v in node.items() if k in BOUND_KEYWORDS and isinstance(v, int) and not isinstance(v, bool)]
        if isinstance(node.get("pattern"), str):  # regex repetitions {n,m} are spelled out too
            counts = "".join(REPETITION.findall(node["pattern"]))
            own += [int(number) for number in re.findall(r"\d+", counts)]
        return max([*own, *(_largest_bound(value) for value in node.values()), 0])
    if isinstance(node, list):
        return max([_largest_bound(value) for value in node] + [0])
    return 0
