"""Parse YAML into plain data while keeping the 1-based position of every key and value."""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError, YAMLWarning
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .errors import ConfigError, Diagnostic, Origin, Path_


@dataclass
class Positions:
    """Origins of every value and of every mapping key, by path."""

    values: dict[Path_, Origin] = field(default_factory=dict)
    keys: dict[Path_, Origin] = field(default_factory=dict)


@dataclass
class Parsed:
    data: Any
    positions: Positions
    raw: bytes = b""  # the file's bytes as read: what a build bakes is what was validated


def parse_text(text: str, source: str) -> Parsed:
    """Parse YAML `text`; a syntax error becomes a located ConfigError."""
    if "\t" in text:
        _reject_tabs(text, source)
    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        with warnings.catch_warnings():  # ruamel warns of a reused anchor: in a config that is an error
            warnings.simplefilter("error", YAMLWarning)
            node = yaml.load(text)
    except YAMLWarning as exc:
        raise ConfigError([_from_warning(exc, source)]) from None
    except DuplicateKeyError as exc:
        raise ConfigError([_located(exc, source, duplicate=True)]) from exc
    except MarkedYAMLError as exc:
        raise ConfigError([_located(exc, source)]) from exc
    except YAMLError as exc:
        raise ConfigError([Diagnostic(Origin(source, 1, 1), "", f"invalid YAML: {exc}")]) from exc
    except RecursionError:
        raise ConfigError([Diagnostic(Origin(source, 1, 1), "", "invalid YAML: nested too deeply")]) from None
    except Exception as exc:  # ruamel's constructors raise their own errors on some values (`0x_`, `._`, `2001-13-01`)
        raise ConfigError([_unreadable_value(yaml, text, source)]) from exc
    positions = Positions()
    data = _plain(node, (), source, positions)
    positions.values.setdefault((), Origin(source, 1, 1))
    return Parsed(data, positions)


def parse_file(path: Path) -> Parsed:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([Diagnostic(Origin(str(path)), "", f"cannot read: {exc.strerror}")]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([Diagnostic(Origin(str(path), line, 1), "", "not UTF-8 text")]) from exc
    return dataclasses.replace(parse_text(text, str(path)), raw=raw)


def _reject_tabs(text: str, source: str) -> None:
    """YAML forbids tabs for indentation; say so plainly instead of the scanner's riddle."""
    for number, line in enumerate(text.splitlines(), start=1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent and line.strip():
            column = indent.index("\t") + 1
            raise ConfigError(
                [Diagnostic(Origin(source, number, column), "", "tab used for indentation; YAML needs spaces")]
            )


def _from_warning(warning: YAMLWarning, source: str) -> Diagnostic:
    """ruamel's warnings carry no marks: the last `line N, column M` of the text is where it happened."""
    text = str(warning).strip()
    places = re.findall(r"line (\d+), column (\d+)", text)
    line, column = (int(places[-1][0]), int(places[-1][1])) if places else (1, 1)
    return Diagnostic(Origin(source, line, column), "", f"invalid YAML: {text.splitlines()[0]}")


def _unreadable_value(yaml: YAML, text: str, source: str) -> Diagnostic:
    """Where the value ruamel could not construct is: the first scalar, in the document's order, that its
    constructor refuses on its own."""
    pending, seen = deque([yaml.compose(text)]), set()
    while pending:
        node = pending.popleft()
        if id(node) in seen:  # an alias: the node was looked at (a recursive one would never end)
            continue
        seen.add(id(node))
        if isinstance(node, ScalarNode) and not _constructs(yaml, node):
            where = Origin(source, node.start_mark.line + 1, node.start_mark.column + 1)
            return Diagnostic(where, "", f"invalid YAML: `{str(node.value)[:40]}` cannot be read as its type: quote it "
                              "if it is text")  # fmt: skip
        if isinstance(node, SequenceNode):
            pending.extendleft(reversed(node.value))
        elif isinstance(node, MappingNode):
            pending.extendleft(reversed([part for pair in node.value for part in pair]))
    return Diagnostic(Origin(source, 1, 1), "", "invalid YAML: a value could not be read")


def _constructs(yaml: YAML, node: ScalarNode) -> bool:
    try:
        yaml.constructor.construct_object(node, deep=True)
        return True
    except Exception:
        return False


def _located(exc: MarkedYAMLError, source: str, duplicate: bool = False) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    if duplicate:
        first = exc.context_mark
        where = f" (first defined at line {first.line + 1})" if first else ""
        return Diagnostic(Origin(source, line, column), "", f"duplicate key{where}")
    problem = exc.problem or "invalid YAML"
    context = f" {exc.context}" if exc.context else ""
    return Diagnostic(Origin(source, line, column), "", f"invalid YAML: {problem}{context}")


def _plain(node: Any, path: Path_, source: str, positions: Positions) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key, value in node.items():
            child = (*path, str(key))
            positions.keys[child] = _position(node, source, "key", key)
            positions.values[child] = _position(node, source, "value", key)
            out[str(key)] = _plain(value, child, source, positions)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            try:
                line, col = node.lc.item(index)
            except (TypeError, KeyError, IndexError):  # a sequence made by a tag (`!!str [1]`) has no positions
                line, col = node.lc.line or 0, node.lc.col or 0
            positions.values[(*path, index)] = Origin(source, line + 1, col + 1)
            items.append(_plain(value, (*path, index), source, positions))
        return items
    return _scalar(node)


def _position(node: CommentedMap, source: str, part: str, key: Any) -> Origin:
    """Where a key or its value is written; keys merged in with `<<:` point at the mapping."""
    try:
        line, column = node.lc.key(key) if part == "key" else node.lc.value(key)
    except KeyError:
        line, column = node.lc.line, node.lc.col
    return Origin(source, line + 1, column + 1)


def _scalar(node: Any) -> Any:
    """ruamel's scalar subclasses (ScalarFloat, etc.) -> plain Python values."""
    for kind in (bool, int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node
