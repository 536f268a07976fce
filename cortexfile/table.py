"""One table of settings, derived from the schema, drives env vars, CLI flags, masking and paths.

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

from pydantic import BaseModel

from .errors import Path_, dotted
from .schema import Cortexfile
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
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _walk(model: type[BaseModel], prefix: tuple[str, ...]) -> list[Setting]:
    found: list[Setting] = []
    for name, field in model.model_fields.items():
        inner, is_list = _unwrap(field.annotation)
        path = (*prefix, name)
        if _is_section(inner):
            if not is_list:
                found += _walk(inner, path)
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        flag = extra.get("flag")
        found.append(
            Setting(
                path=path,
                description=field.description or "",
                flag=flag if isinstance(flag, str) else None,
                is_list=is_list,
                is_bool=inner is bool,
                is_secret=inner is Secret,
                is_path=inner is Path,
            )
        )
    return found


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
