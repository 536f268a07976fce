"""The bound on alternatives a schema's grammar keeps alive at once (grammar_ambiguity.py), on the shapes an
attacker would send: nested alternatives that all begin alike, hidden under keywords, behind $refs, recursive."""

from __future__ import annotations

from typing import Any

import pytest
from menlo_cortex.runtime.v1.grammar_ambiguity import TooManyParts, live_alternatives

NODES = 100_000


def nested(depth: int, width: int = 8) -> dict[str, Any]:
    """The reviewer's schema: `width` arrays that all start with `[`, each holding the next level (2.5 KB at
    depth 5, 6 s a token in llama.cpp before the bound)."""
    defs: dict[str, Any] = {}
    for level in range(depth):
        inner = {"$ref": f"#/$defs/l{level + 1}"} if level + 1 < depth else {"type": "string"}
        defs[f"l{level}"] = {"anyOf": [{"type": "array", "prefixItems": [inner]} for _ in range(width)]}
    return {"$defs": defs, "$ref": "#/$defs/l0"}


@pytest.mark.parametrize(("depth", "alive"), [(1, 8), (2, 64), (3, 512), (4, 4096), (5, 32768)])
def test_nested_alternatives_multiply(depth: int, alive: int) -> None:
    assert live_alternatives(nested(depth), NODES) == alive


def test_alternatives_in_sequence_do_not_multiply() -> None:
    three = {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}
    record = {"type": "object", "properties": dict.fromkeys("abcdefgh", three)}
    assert live_alternatives(record, NODES) == 3
    assert live_alternatives({"enum": list(range(1000))}, NODES) == 1000
    assert live_alternatives({"type": ["string", "null"]}, NODES) == 2


@pytest.mark.parametrize("keyword", ["enum", "const", "$ref", "anyOf"])
def test_a_property_named_like_a_keyword_is_still_walked(keyword: str) -> None:
    hidden = {"type": "object", "properties": {keyword: nested(4)["$defs"]["l0"]}, "$defs": nested(4)["$defs"]}
    assert live_alternatives(hidden, NODES) >= 4096


def test_a_recursive_ref_counts_its_alternatives_once_more_and_stops() -> None:
    level = {"anyOf": [{"type": "array", "items": {"$ref": "#/$defs/l"}}] * 8}
    recursive = {"$defs": {"l": level}, "$ref": "#/$defs/l"}
    assert live_alternatives(recursive, NODES) == 512  # through $defs, then the $ref, then once more
    value = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": "#"}}]}
    assert live_alternatives(value, NODES) == 4


def test_a_schema_with_more_parts_than_the_walk_may_visit_is_refused() -> None:
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(200)}}
    with pytest.raises(TooManyParts):
        live_alternatives(wide, 100)
    assert live_alternatives(True, NODES) == 1
