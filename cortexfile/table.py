"""One table of settings, derived from the schema, drives env vars, CLI flags, masking, paths and
how an edit reaches a running server (hot reload).

Every scalar (or list-of-scalars) field reachable through nested sections is a setting;
`models` is a list of sections and is set in files only.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .errors import Path_, dotted
from .schema import Cortexfile
from .schema.base import Applies, Section
from .schema.models import Model
from .secrets import Secret

ENV_PREFIX = "CORTEX_"


@dataclass(frozen=True)
class Setting:
    path: tuple[str, ...]
    description: str
    flag: str | None
    is_list: bool
    is_bool: bool
    is_secret: bool
    is_path: bool
    secret_lines: bool  # a secret of several lines (a private key), read by a program, never sent in a header
    applies: Applies

    @property
    def key(self) -> str:
        return dotted(self.path)

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + "__".join(part.upper() for part in self.path)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """`list[X] | None` -> (X, True); `X | None` -> (X, False)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else (annotation, False)
    if origin is list:
        inner, _ = _unwrap(typing.get_args(annotation)[0])
        return inner, True
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation, False


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Section)


def _walk(model: type[Section], prefix: tuple[str, ...], inherited: Applies | None = None) -> list[Setting]:
    found: list[Setting] = []
    section_applies = model.applies or inherited
    for name, field in model.model_fields.items():
        inner, is_list = _unwrap(field.annotation)
        path = (*prefix, name)
        if _is_section(inner):
            if not is_list:
                found += _walk(inner, path, section_applies)
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        flag = extra.get("flag")
        declared = extra.get("reload")
        applies = Applies(declared) if isinstance(declared, str) else section_applies
        if applies is None:
            raise TypeError(f"setting {dotted(path)} declares no reload behaviour (`applies`), nor does its section")
        found.append(
            Setting(
                path=path,
                description=field.description or "",
                flag=flag if isinstance(flag, str) else None,
                is_list=is_list,
                is_bool=inner is bool,
                is_secret=inner is Secret,
                is_path=inner is Path,
                secret_lines=extra.get("lines") is True,
                applies=applies,
            )
        )
    return found


@cache
def section_fields() -> dict[type[Section], dict[str, Applies]]:
    """Each section class's scalar settings and how they reload (models' fields included)."""
    found: dict[type[Section], dict[str, Applies]] = {}
    for section, prefix, table in ((Cortexfile, (), settings()), (Model, (), tuple(model_settings().values()))):
        for setting in table:
            owner = _owner(section, setting.path[len(prefix) : -1])
            found.setdefault(owner, {})[setting.path[-1]] = setting.applies
    return found


def _owner(section: type[Section], path: tuple[str, ...]) -> type[Section]:
    for name in path:
        inner, _ = _unwrap(section.model_fields[name].annotation)
        section = inner
    return section


@cache
def settings() -> tuple[Setting, ...]:
    return tuple(_walk(Cortexfile, ()))


@cache
def by_path() -> dict[tuple[str, ...], Setting]:
    return {s.path: s for s in settings()}


@cache
def model_settings() -> dict[str, Setting]:
    """The per-model fields, for path and secret handling inside `models[i]`."""
    return {s.path[0]: s for s in _walk(Model, ())}


def setting_at(path: Path_) -> Setting | None:
    """The setting a value path belongs to (list items belong to their list)."""
    if len(path) >= 3 and path[0] == "models" and isinstance(path[1], int):
        return model_settings().get(str(path[2]))
    names = tuple(p for p in path if isinstance(p, str))
    return by_path().get(names)
