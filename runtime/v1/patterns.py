"""A JSON-schema `pattern` read the way llama-cpp-python's regex-to-grammar step (0.3) reads it, in one pass.

That step spells each quantifier out, loops forever on a `]` or `}` where it expects an item, and copies
escapes such as `\\d` into the grammar, which llama.cpp's parser then refuses: llama-cpp-python does not check
for that, and the whole server dies. So the pass below finds the quantifiers and refuses what would loop or
crash, before anything is converted. Each character is looked at a bounded number of times: the index only
moves forward, and no step looks further back than one character or further ahead than the next `}`.
"""

from __future__ import annotations

from collections.abc import Iterator

NON_LITERAL = frozenset("|.()[]{}*+?")
UNESCAPED_IN_LITERALS = frozenset("[]()|{}*+?")  # the converter drops the backslash before these
GBNF_ESCAPES = {
    "t": 0,
    "r": 0,
    "n": 0,
    "\\": 0,
    '"': 0,
    "-": 0,
    "[": 0,
    "]": 0,
    "x": 2,
    "u": 4,
    "U": 8,
}  # hex digits after
HEX = frozenset("0123456789abcdefABCDEF")
REPEATS = frozenset("*+?")
Quantifier = tuple[int, int | None]  # {n} is (n, n), {n,} is (n, None), {n,m} is (n, m)


class Unsupported(Exception):
    """The schema would hang the converter or make a grammar that llama.cpp refuses; the message says why."""


def quantifiers(pattern: str) -> Iterator[Quantifier]:
    """The {n,m} counts the converter would spell out. Raises Unsupported for what it must not see; stops
    quietly where the converter itself fails (it raises, which refuses the schema)."""
    if len(pattern) < 2 or pattern[0] != "^" or pattern[-1] != "$":
        return  # refused by the converter
    body, index, previous = pattern[1:-1], 0, ""
    while index < len(body):
        char = body[index]
        if (char in "*+" and previous in REPEATS | {"{"}) or (char in "*+?{" and previous == "|"):
            raise Unsupported("a quantifier must follow an item, not `|` or another `*`, `+` or `?` (as in `a**`)")
        if char == "{":
            end = body.find("}", index)
            if end < 0 or (found := _quantifier(body[index + 1 : end])) is None:
                return
            yield found
            index = end + 1
        elif char == "[":
            index = _char_class(body, index + 1)
            if index < 0:
                return
        elif char in ".()|*+?":
            index += 1
        else:
            index = _literal(body, index)
        previous = char


def _quantifier(inside: str) -> Quantifier | None:
    """As the converter reads it: int() of each comma-separated part ("+5", "1_000" and " 7 " included)."""
    parts = [part.strip() for part in inside.split(",")]
    try:
        if len(parts) == 1:
            return int(parts[0]), int(parts[0])
        if len(parts) == 2:
            return int(parts[0]) if parts[0] else 0, int(parts[1]) if parts[1] else None
    except ValueError:
        pass
    return None


def _char_class(body: str, index: int) -> int:
    """Index after the class's `]`, or -1 when unterminated. Its text is copied to the grammar as it is."""
    while index < len(body) and body[index] != "]":
        if body[index] == "\\":
            _check_escape(body, index)
            index += 2
        else:
            index += 1
    return index + 1 if index < len(body) else -1


def _literal(body: str, index: int) -> int:
    """The converter's literal loop: index after the literal; a stray `]` or `}` would make it loop forever."""
    start, end, hex_digits = index, len(body), 0
    while index < end:
        char = body[index]
        if char == "\\" and index < end - 1:
            hex_digits = 0 if body[index + 1] in UNESCAPED_IN_LITERALS else _check_escape(body, index)
            index += 2
        elif char == "\\":
            raise Unsupported("a pattern cannot end with a lone backslash")
        elif char == '"' or (
            char not in NON_LITERAL
            and (index == end - 1 or index == start or body[index + 1] == "." or body[index + 1] not in NON_LITERAL)
        ):
            index, hex_digits = index + 1, max(hex_digits - 1, 0)
        else:
            break
    if index == start:
        raise Unsupported("a `]` or `}` without its opening bracket must be escaped")
    if hex_digits:  # the converter cut the literal inside the escape's digits (before a quantifier or `|`)
        raise Unsupported(
            "a \\x, \\u or \\U escape right before a quantifier or `|` is not supported: write the character"
        )
    return index


def _check_escape(body: str, index: int) -> int:
    """llama.cpp grammars know \\t \\r \\n \\\\ \\" \\- \\[ \\] and \\x, \\u, \\U with their hex digits; nothing else.
    Returns how many hex digits follow."""
    name = body[index + 1] if index + 1 < len(body) else ""
    digits = GBNF_ESCAPES.get(name)
    hex_digits = body[index + 2 : index + 2 + (digits or 0)]
    if digits is None or len(hex_digits) != digits or not set(hex_digits) <= HEX:
        raise Unsupported(
            "llama.cpp grammars do not support this escape (such as \\d, \\w, \\s or \\.): "
            "write a class such as [0-9] or [.] instead"
        )
    return digits
