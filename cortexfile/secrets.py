"""Secret values: a literal, or a reference resolved at run time (`${env:NAME}`, `${file:PATH}`).

A reference is safe to print and to write into rendered files; a literal is not, so
every printer masks it and `cortex validate` warns about it.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

MASK = "********"
MAX_SECRET_BYTES = 64 << 10  # a key or a token; /dev/zero named as a secret is not read to the end
_REFERENCE = re.compile(r"^\$\{(?P<kind>env|file):(?P<target>[^}]+)\}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

SecretKind = Literal["literal", "env", "file"]
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _check_file_reference(target: str) -> None:
    """A `${file:...}` path, like every path setting: no control character, no `..` (the installer
    gives files under /etc/cortex to the service's group, judged by the path as written)."""
    if _CONTROL.search(target):
        raise ValueError("a secret file path cannot hold a control character (a newline, a tab, ...)")
    if ".." in Path(target).parts:
        raise ValueError(f"`{target}` has a `..` segment: write the path without it (paths are not resolved)")


class SecretUnavailable(Exception):
    """A reference points at an unset env var or a missing/unreadable file."""


@dataclass(frozen=True)
class Secret:
    """A secret as written. `resolve()` reads it; `str()` never reveals a literal."""

    kind: SecretKind
    target: str  # the literal itself, the env var name, or the file path

    @classmethod
    def parse(cls, text: str) -> Secret:
        match = _REFERENCE.match(text.strip())
        if match is None:
            if text.startswith("${"):
                raise ValueError("a secret reference is `${env:NAME}` or `${file:/path}`")
            return cls("literal", text)
        kind, target = match["kind"], match["target"].strip()
        if kind == "env" and not _ENV_NAME.match(target):
            raise ValueError(f"`{target}` is not an environment variable name")
        if kind == "file":
            _check_file_reference(target)
        return cls("env" if kind == "env" else "file", target)

    @property
    def is_literal(self) -> bool:
        return self.kind == "literal"

    def with_base(self, base: Path) -> Secret:
        """Make a relative `${file:...}` path relative to `base` (the Cortexfile's folder)."""
        if self.kind != "file" or Path(self.target).is_absolute():
            return self
        return Secret("file", str(base / self.target))

    def resolve(self, environ: dict[str, str] | None = None, *, lines: bool = False) -> str:
        """The secret's value; SecretUnavailable (never quoting the value) when it cannot be used. `lines`: a
        secret of several lines (a private key, read by a program from a file), never a header's."""
        value = self._read(os.environ if environ is None else environ)
        if any(unicodedata.category(char) == "Cc" and not (lines and char == "\n") for char in value):
            # A newline inside a token would reach HTTP headers (and their error messages) downstream.
            raise SecretUnavailable(f"{self.described()} holds control characters (a line break inside it?)")
        return value

    def _read(self, env: Mapping[str, str]) -> str:
        if self.kind == "literal":
            return self.target
        if self.kind == "env":
            if self.target not in env:
                raise SecretUnavailable(f"environment variable {self.target} is not set")
            return env[self.target]
        try:
            with open(self.target, "rb") as file:
                data = file.read(MAX_SECRET_BYTES + 1)
            if len(data) > MAX_SECRET_BYTES:
                raise SecretUnavailable(f"secret file {self.target} is larger than {MAX_SECRET_BYTES >> 10} KiB")
            return data.decode("utf-8-sig").strip()  # an editor's BOM is not the secret
        except OSError as exc:
            raise SecretUnavailable(f"cannot read secret file {self.target}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SecretUnavailable(f"secret file {self.target} is not UTF-8 text") from None

    def described(self) -> str:
        """Where the secret comes from, for messages: never its value."""
        return {"literal": "a literal secret", "env": f"environment variable {self.target}"}.get(
            self.kind, f"secret file {self.target}"
        )

    def shown(self) -> str:
        """What printers show: references as written, literals masked."""
        return MASK if self.is_literal else f"${{{self.kind}:{self.target}}}"

    def __str__(self) -> str:
        return self.shown()

    def __repr__(self) -> str:
        return f"Secret({self.shown()!r})"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        from_str = core_schema.no_info_after_validator_function(cls.parse, core_schema.str_schema())
        return core_schema.union_schema(
            [core_schema.is_instance_schema(cls), from_str],
            serialization=core_schema.plain_serializer_function_ser_schema(cls.shown),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "description": "A secret: `${env:NAME}`, `${file:/path}`, or a literal (discouraged).",
        }
