"""JSON schemas that llama.cpp must turn into grammars: refused when they cannot be converted, or when the
grammar, or the work to make it, would be large.

llama-cpp-python's converter spells repetitions out ({"maxItems": 4096} is 4096 copies of the item's rule
name) and has quadratic corners (many optional properties, rule names that collide). So a request pays
from one budget: its schemas' size, a bound per repetition, an estimate of the grammar walked before
converting, and then the rules the converter actually makes, counted as it makes them. All of this is
CPU work: it runs on a worker thread (`offload.py`), never on the event loop.

Some schemas would not merely be large: the converter loops forever on some patterns, and llama.cpp's parser
refuses some of its grammars, which llama-cpp-python does not notice: the process dies. Those are Unsupported.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..http.errors import ApiError
from .grammar_ambiguity import TooManyParts, live_alternatives
from .patterns import Unsupported, quantifiers

MAX_SCHEMA_BOUND = 4096  # one length, item count or regex quantifier: each is spelled out in the grammar
MAX_OPTIONAL_SPAN = 1000  # max - min: spelled out as nested groups, and llama.cpp refuses (crashes) beyond ~1000
MAX_PATTERN_CHARS = 1024  # one `pattern`
MAX_SCHEMA_BYTES = 128 * 1024  # all schemas of one request, as compact JSON
MAX_GRAMMAR_CHARS = 1024 * 1024  # grammar text made for one request (llama.cpp holds ~3 bytes per character)
MAX_GRAMMAR_STEPS = 25_000  # rules made or looked up for one request (one step is ~10 us of converter work)
MAX_RULE_NAME_CHARS = 1024  # rule names grow with the property names on their path; repetitions copy them
# Values of one enum, or schemas of one anyOf/oneOf: each is an alternative that llama.cpp's parser keeps alive and
# checks every candidate token against; thousands make each check thousands of times dearer.
MAX_ALTERNATIVES = 1024  # and alternatives alive at once, nested ones included (grammar_ambiguity.py)
MAX_SCHEMA_NODES = 100_000  # schema nodes walked for that bound, local $refs expanded
ALTERNATIVES = ("enum", "anyOf", "oneOf")
NAME_SLACK = 24  # what the converter adds to a path: "-item", "-tuple-12", "-additional-value", collision digits
BOUND_PAIRS = (("minLength", "maxLength"), ("minItems", "maxItems"), ("minProperties", "maxProperties"))
SPELLED_OUT = frozenset({"minLength", "maxLength", "minItems", "maxItems"})  # the converter ignores *Properties


class OverBudget(Exception):
    """The schema would make too large a grammar, or too much work; the message names the limit."""


@dataclass
class Budget:
    """What one request's schemas may cost, all of them together."""

    schema_bytes: int = 0
    chars: int = 0
    steps: int = 0

    def take_schema(self, size: int) -> None:
        self.schema_bytes += size
        if self.schema_bytes > MAX_SCHEMA_BYTES:
            raise OverBudget(f"the JSON schemas of a request may take {MAX_SCHEMA_BYTES} bytes in all (server limit)")

    def spend(self, chars: int, steps: int = 1) -> None:
        self.chars += chars
        self.steps += steps
        if self.chars > MAX_GRAMMAR_CHARS:
            raise OverBudget(f"its grammar would exceed {MAX_GRAMMAR_CHARS} characters (server limit)")
        if self.steps > MAX_GRAMMAR_STEPS:
            raise OverBudget(f"its grammar would need more than {MAX_GRAMMAR_STEPS} rules (server limit)")


def invalid(param: str, reason: str) -> ApiError:
    return ApiError(400, f"Invalid value for '{param}': {reason}.", param=param, code="invalid_value")


def too_large(param: str, exc: OverBudget) -> ApiError:
    return invalid(param, f"this JSON schema is too large: {exc}")


def unusable(param: str, exc: Unsupported | None = None) -> ApiError:
    """A fixed message: neither the converter's exception nor any part of the schema is echoed."""
    return invalid(param, f"it cannot be turned into a grammar: {exc or 'unsupported JSON Schema'}")


def convert(schema: object, budget: Budget) -> str | None:
    """The GBNF grammar for `schema`, None when the converter fails on it. Raises OverBudget when it is too
    large, Unsupported when the converter would hang on it or llama.cpp would refuse (and crash on) its grammar.

    Clients send the same schema with every request: a schema converted before costs its budget again, not
    the conversion (CONVERTED)."""
    text = json.dumps(schema, separators=(",", ":"))
    budget.take_schema(len(text))
    made = CONVERTED.get(text) or _converted(schema, text, budget)
    if made.refusal is not None:
        raise type(made.refusal)(str(made.refusal))
    budget.spend(made.chars, made.steps)
    return made.grammar


def _converted(schema: object, text: str, budget: Budget) -> Converted:
    """Convert against what is left of `budget` (without spending it), and keep the outcome."""
    fresh = Budget(chars=budget.chars, steps=budget.steps)
    grammar, refusal = None, None
    try:
        estimate(schema, fresh)
        check_ambiguity(schema)
        grammar = _convert(text, fresh)
        if len(grammar) > MAX_GRAMMAR_CHARS:  # bounded by the budget already; checked on what llama.cpp gets
            raise OverBudget(f"its grammar exceeds {MAX_GRAMMAR_CHARS} characters (server limit)")
    except (OverBudget, Unsupported) as exc:
        refusal = exc
    except Exception:  # the converter raises many kinds (KeyError, AssertionError, RecursionError...)
        grammar = None
    made = Converted(grammar, fresh.chars - budget.chars, fresh.steps - budget.steps, refusal)
    if budget.chars == 0 and budget.steps == 0:  # an outcome that depends on no earlier schema of the request
        CONVERTED.put(text, made)
    return made


@dataclass(frozen=True)
class Converted:
    grammar: str | None
    chars: int  # what its conversion charged
    steps: int
    refusal: OverBudget | Unsupported | None = None


class ConvertedCache:
    """Recently converted schemas by their JSON text, at most `max_chars` of schemas and grammars together;
    the least recently used go first. A pure function's results: safe to share across apps and reloads."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars, self.chars = max_chars, 0
        self._items: OrderedDict[str, Converted] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, text: str) -> Converted | None:
        with self._lock:
            found = self._items.get(text)
            if found is not None:
                self._items.move_to_end(text)
            return found

    def put(self, text: str, converted: Converted) -> None:
        size = len(text) + len(converted.grammar or "")
        with self._lock:
            if text in self._items or size > self.max_chars:
                return
            self._items[text] = converted
            self.chars += size
            while self.chars > self.max_chars:
                old_text, old = self._items.popitem(last=False)
                self.chars -= len(old_text) + len(old.grammar or "")


CONVERTED = ConvertedCache(8 * MAX_GRAMMAR_CHARS)


def estimate(schema: object, budget: Budget) -> None:
    """Walk the schema once (no recursion: depth is the client's) and charge what its repetitions would spell
    out: bound x (rule name, at most the path's keys, + slack). Refuses before anything is converted when that
    is over the budget; the conversion then charges what it really makes."""
    cost = 0
    stack: list[tuple[object, int]] = [(schema, 0)]
    while stack:
        node, name = stack.pop()
        if isinstance(node, dict):
            cost += _node_cost(node, name + NAME_SLACK)
            stack.extend((value, name + len(key) + 1) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, name + len(str(index)) + 1) for index, value in enumerate(node))
        if budget.chars + cost > MAX_GRAMMAR_CHARS:
            raise OverBudget(f"its grammar would exceed {MAX_GRAMMAR_CHARS} characters (server limit)")


def check_ambiguity(schema: object) -> None:
    """OverBudget when the grammar may keep more than MAX_ALTERNATIVES alternatives alive at once."""
    try:
        alive = live_alternatives(schema, MAX_SCHEMA_NODES)
    except TooManyParts:
        raise OverBudget(f"it has more than {MAX_SCHEMA_NODES} parts, $refs expanded (server limit)") from None
    if alive > MAX_ALTERNATIVES:
        raise OverBudget(
            f"its nested `anyOf`/`oneOf`/`enum` alternatives may keep more than {MAX_ALTERNATIVES} alive at once "
            "(server limit): make alternatives differ at their first character, or nest fewer"
        )


def _node_cost(node: dict[str, Any], name: int) -> int:
    for keyword in ALTERNATIVES:
        listed = node.get(keyword)
        if isinstance(listed, list) and len(listed) > MAX_ALTERNATIVES:
            raise OverBudget(f"`{keyword}` may list {MAX_ALTERNATIVES} alternatives (server limit)")
    cost = 0
    for low, high in BOUND_PAIRS:
        least, most = _bound(node.get(low), low), _bound(node.get(high), high)
        if low in SPELLED_OUT:
            _check_span(least, most if high in node else None, f"`{high}` - `{low}`")
            cost += max(least, most) * name
    pattern = node.get("pattern")
    return cost + (_pattern_cost(pattern, name) if isinstance(pattern, str) else 0)


def _pattern_cost(pattern: str, name: int) -> int:
    if len(pattern) > MAX_PATTERN_CHARS:
        raise OverBudget(f"a `pattern` may have {MAX_PATTERN_CHARS} characters (server limit)")
    cost = 0
    for least, most in quantifiers(pattern):
        _check_span(_bound(least, "pattern"), None if most is None else _bound(most, "pattern"), "m - n in {n,m}")
        cost += max(least, most or 0) * name
    return cost


def _bound(value: object, keyword: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        return 0  # the converter fails on other types, or treats true as 1
    if not 0 <= value <= MAX_SCHEMA_BOUND:
        raise OverBudget(f"`{keyword}` bounds must be between 0 and {MAX_SCHEMA_BOUND} (server limit)")
    return value


def _check_span(least: int, most: int | None, what: str) -> None:
    if most is not None and most - least > MAX_OPTIONAL_SPAN:
        raise Unsupported(f"{what} may be at most {MAX_OPTIONAL_SPAN} (a limit of llama.cpp grammars)")


def _convert(text: str, budget: Budget) -> str:
    """llama-cpp-python's json_schema_to_gbnf, with every rule it makes charged to `budget` as it is made."""
    module = importlib.import_module("llama_cpp.llama_grammar")
    converter = module.SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    converter._add_rule = partial(_add_rule, converter._rules, module.INVALID_RULE_CHARS_RE, budget)
    converter._format_literal = partial(_format_literal, converter._format_literal)
    schema = converter.resolve_refs(json.loads(text), "stdin")  # a fresh copy: resolve_refs rewrites $refs
    converter.visit(schema, "")
    return str(converter.format_grammar())


def _format_literal(original: Callable[[str], str], literal: str) -> str:
    """The converter escapes the quotes of a JSON string but not the backslash before them: llama.cpp would
    refuse (and crash on) the grammar of a property name, enum or const string that holds a `"`."""
    index = literal.find("\\")
    while index >= 0:
        if literal[index + 1 : index + 2] == '"':
            raise Unsupported('a `"` inside a property name, `enum` or `const` string is not supported')
        index = literal.find("\\", index + 2)
    return str(original(literal))


def _add_rule(rules: dict[str, str], invalid_chars: re.Pattern[str], budget: Budget, name: str, rule: str) -> str:
    """SchemaConverter._add_rule (llama-cpp-python 0.3), counting the rule's size and the name collisions it walks."""
    key = invalid_chars.sub("-", name)
    if len(key) > MAX_RULE_NAME_CHARS:
        raise OverBudget(f"its rule names would exceed {MAX_RULE_NAME_CHARS} characters (long property names)")
    budget.spend(len(key) + len(rule))
    if not rule.strip():  # an empty enum, anyOf or type list: llama.cpp refuses the grammar (and crashes)
        raise Unsupported("an empty `enum`, `anyOf`, `oneOf` or `type` list matches nothing")
    if key in rules and rules[key] != rule:
        base, number = key, 0
        while f"{base}{number}" in rules and rules[f"{base}{number}"] != rule:
            number += 1
            budget.spend(len(rule))
        key = f"{base}{number}"
    rules[key] = rule
    return key
