"""Shared pieces of the schema: the strict base model, `setting()`, and common value types."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.config import JsonDict


class Section(BaseModel):
    """Every part of the Cortexfile: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def setting(default: Any = ..., description: str = "", *, flag: str | None = None, **kw: Any) -> Any:
    """A documented field. `flag` names its `cortex start` option (derived, never hand-listed)."""
    extra: JsonDict | None = {"flag": flag} if flag else None
    return Field(default, description=description, json_schema_extra=extra, **kw)


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


def _check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOSTNAME.match(value):
        raise ValueError(f"`{value}` is not an IP address or host name")
    return value


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ValueError(f"`{value}` must start with {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname:
        raise ValueError(f"`{value}` has no host")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"`{value}` has an invalid port") from exc
    return value


def _check_origin(value: str) -> str:
    if value == "*":
        return value
    _check_url(value, ("http", "https"))
    parts = urlsplit(value)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"`{value}` is not an origin: use scheme://host[:port] without a path")
    return value.rstrip("/")


def _check_sha256(value: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
        raise ValueError("a sha256 is 64 hexadecimal characters")
    return value.lower()


Host = Annotated[str, AfterValidator(_check_host)]
HttpUrl = Annotated[str, AfterValidator(lambda v: _check_url(v, ("http", "https")))]
ProxyUrl = Annotated[str, AfterValidator(lambda v: _check_url(v, ("http", "https", "socks5", "socks5h")))]
Origin = Annotated[str, AfterValidator(_check_origin)]
Sha256 = Annotated[str, AfterValidator(_check_sha256)]
Port = Annotated[int, Field(ge=1, le=65535)]
