"""The jinja2 environment every target renders with: each `{{ ... }}` must go through one of the
escaping filters of images/escape.py (or be an int), else rendering fails.

`finalize` sees the value of every `{{ ... }}`; it lets through only what an escaping filter (or a
macro built from filtered values) returned, and integers. The filters mark their results with
markupsafe's Markup, which jinja's autoescaping leaves as it is; jinja's own filters and globals
are removed, so nothing else can make such a value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jinja2
from markupsafe import Markup

from . import escape

FILTERS: dict[str, Callable[[Any], str]] = {
    "comment": escape.comment,
    "word": escape.word,
    "line": escape.line,
    "unit_value": escape.unit_value,
    "unit_word": escape.unit_word,
    "unit_words": escape.unit_words,
    "unit_exec": escape.unit_exec,
    "sysusers": escape.sysusers,
    "sh": escape.sh,
    "sh_words": escape.sh_words,
    "dockerfile_word": escape.dockerfile_word,
    "dockerfile_string": escape.dockerfile_string,
    "dockerfile_exec": escape.dockerfile_exec,
    "dockerfile_shell": escape.dockerfile_shell,
    "dockerfile_shell_words": escape.dockerfile_shell_words,
    "dockerfile_code": escape.dockerfile_code,
}


class RawValue(TypeError):
    """A template wrote a value without an escaping filter."""


def _escaped(helper: Callable[[Any], str]) -> Callable[[Any], Markup]:
    def apply(value: Any) -> Markup:
        return Markup(helper(value))

    return apply


def _only_escaped(value: Any) -> Any:
    if isinstance(value, Markup) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise RawValue(f"a template wrote {value!r} without an escaping filter ({', '.join(sorted(FILTERS))})")


def environment(package: str, *, trim_blocks: bool = True) -> jinja2.Environment:
    """The environment for the templates/ folder of `package`; `trim_blocks` also strips the
    indentation before a block tag."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=trim_blocks,
        lstrip_blocks=trim_blocks,
        autoescape=True,  # with `finalize`, only values from FILTERS (Markup) reach the output
        finalize=_only_escaped,
    )
    env.filters = {name: _escaped(helper) for name, helper in FILTERS.items()}
    env.globals = {}
    return env
