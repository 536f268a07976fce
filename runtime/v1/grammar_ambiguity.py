"""How many alternatives a schema's grammar may keep alive at once: llama.cpp's parser keeps one stack per
alternative that still matches and checks every token against each of them. One `anyOf` of 1024 is bounded by
MAX_ALTERNATIVES per list; nesting multiplies: eight arrays that all start with `[`, each holding the next level
of eight, keep 8**5 stacks after five `[`, and each token then costs seconds on the step every stream waits for.

The bound (grammar_limits refuses a schema over MAX_ALTERNATIVES), walked once over the schema and its
local `$ref`s (no recursion in Python: depth is the client's): an `anyOf`, `oneOf`, `enum` or `type` list is
the sum of its members' bounds (they may all match at once), any other schema the largest of its parts' (they
follow one another). A `$ref` back into its own path counts its alternatives once more and stops there;
deeper nesting of a recursive schema is left to the sampler, which ends a sequence whose grammar work
outgrows the step (sampling.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

ALTERNATIVE_LISTS = ("anyOf", "oneOf")
ONE_SCHEMA = ("items", "additionalProperties", "additionalItems", "contains", "not", "if", "then", "else",
              "propertyNames", "unevaluatedItems", "unevaluatedProperties")  # fmt: skip
SCHEMA_LISTS = ("allOf", "prefixItems", "items")
SCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas", "$defs", "definitions")


class TooManyParts(Exception):
    """The schema, its local `$ref`s expanded, has more parts than the walk may visit."""


def live_alternatives(schema: object, max_nodes: int) -> int:
    """The bound for `schema`; TooManyParts past `max_nodes` schema nodes walked ($refs expanded)."""
    return _Walk(schema, max_nodes).bound()


Key = tuple[int, frozenset[int]]  # a schema node by id, and the $ref targets on the path to it


class _Walk:
    """Post-order over (schema, $ref targets on its path) without recursion; each bound kept by key. Every node
    keyed is held by the walk (the schema, or `_revisits`), so no id is reused while it runs."""

    def __init__(self, root: object, max_nodes: int) -> None:
        self.root, self.max_nodes = root, max_nodes
        self.done: dict[Key, int] = {}
        self._revisits: dict[int, dict[str, Any]] = {}

    def bound(self) -> int:
        stack: list[tuple[object, frozenset[int], bool]] = [(self.root, frozenset(), False)]
        walked = 0
        while stack:
            node, seen, expanded = stack.pop()
            if (id(node), seen) in self.done:
                continue
            parts = list(self._parts(node, seen))
            if expanded:
                self.done[(id(node), seen)] = _combine(node, [self.done[(id(p), s)] for p, s in parts])
                continue
            walked += 1
            if walked > self.max_nodes:
                raise TooManyParts
            stack.append((node, seen, True))
            stack.extend((part, part_seen, False) for part, part_seen in parts)
        return self.done[(id(self.root), frozenset())]

    def _parts(self, node: object, seen: frozenset[int]) -> Iterator[tuple[object, frozenset[int]]]:
        """The subschemas of `node`, its alternatives first; a local `$ref`'s target (not again on its own path:
        there its alternatives count once more, as a leaf)."""
        if not isinstance(node, dict):
            return
        for word in ALTERNATIVE_LISTS:
            yield from ((item, seen) for item in _listed(node.get(word)))
        for word in ONE_SCHEMA:
            if isinstance(node.get(word), dict):
                yield node[word], seen
        for word in SCHEMA_LISTS:
            yield from ((item, seen) for item in _listed(node.get(word)))
        for word in SCHEMA_MAPS:
            if isinstance(node.get(word), dict):
                yield from ((item, seen) for item in node[word].values() if isinstance(item, dict))
        target = _target(self.root, node.get("$ref"))
        if isinstance(target, dict):
            yield (self._revisit(target), seen) if id(target) in seen else (target, seen | {id(target)})

    def _revisit(self, target: dict[str, Any]) -> dict[str, Any]:
        """A recursive `$ref`'s target seen again: its alternatives once more, and no deeper."""
        if id(target) not in self._revisits:
            count = sum(len(_listed(target.get(word))) for word in ALTERNATIVE_LISTS)
            self._revisits[id(target)] = {"enum": list(range(count))} if count > 1 else {}
        return self._revisits[id(target)]


def _listed(value: object) -> list[Any]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _combine(node: object, bounds: list[int]) -> int:
    """The alternatives' bounds come first in `bounds`, one per member: they add up (all may match at once);
    the other parts follow one another: the largest counts."""
    if not isinstance(node, dict):
        return 1  # `true`, `false`: no alternatives
    members = sum(len(_listed(node.get(word))) for word in ALTERNATIVE_LISTS)
    alive = (sum(bounds[:members]) if members else 1) * _own_alternatives(node)
    return max(alive, *bounds[members:]) if bounds[members:] else alive


def _own_alternatives(node: dict[str, Any]) -> int:
    """An `enum` or a `type` list: alternatives of its own."""
    count = 1
    for word in ("enum", "type"):
        value = node.get(word)
        if isinstance(value, list) and value:
            count *= len(value)
    return count


def _target(root: object, reference: object) -> object | None:
    """A local reference (`#`, `#/$defs/name`, `#/definitions/name`, any `#/a/b` path), else None."""
    if not isinstance(reference, str) or not reference.startswith("#"):
        return None
    node = root
    for raw in (part for part in reference[1:].split("/") if part):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
