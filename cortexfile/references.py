"""The secrets and secret files the running appliance reads, each with the setting that names it: what a
manifest must provide (an env var, a mounted file) and what it must never carry (a literal)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .errors import Path_
from .schema import Cortexfile
from .secrets import Secret
from .table import settings

# Files the server reads that hold secrets (or belong beside them): mounted from a Secret, like ${file:...}.
SECRET_PATHS = (("server", "auth", "api_key_file"), ("server", "tls", "cert"), ("server", "tls", "key"))


@dataclass(frozen=True)
class Reference:
    path: Path_  # the setting, with the list index for a list of secrets
    kind: str  # literal | env | file
    target: str  # the env var name, or the file's path (never a literal's value: that stays in `secret`)


def runtime_references(config: Cortexfile, *, builder: bool = False) -> Iterator[Reference]:
    """Every secret the server reads at run time; with `builder`, build.* secrets (the builder's) too."""
    for setting in settings():
        if setting.is_secret and (builder or setting.path[0] != "build"):
            value = _at(config, setting.path)
            values = value if isinstance(value, list) else [value]
            for index, secret in enumerate(values):
                if isinstance(secret, Secret):
                    path: Path_ = (*setting.path, index) if isinstance(value, list) else setting.path
                    yield Reference(path, secret.kind, "" if secret.is_literal else secret.target)
    for path in SECRET_PATHS:
        value = _at(config, path)
        if value is not None:
            yield Reference(path, "file", str(value))


def _at(config: Cortexfile, path: tuple[str, ...]) -> object:
    value: object = config
    for part in path:
        value = getattr(value, part)
    return value
