"""Shared pieces of the schema: the strict base model, `setting()`, and common value types."""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.config import JsonDict


class Applies(StrEnum):
    """How an edit of a setting reaches a running server (`cortex start` hot reload)."""

    live = "live"  # a new app around the same models: CORS, keys, limits, log level
    models = "models"  # models loaded again, swapped or unloaded
    listener = "listener"  # a new listening socket: host, port, TLS, connection limit
    watcher = "watcher"  # how the files are watched
    restart = "restart"  # at the next start only (logged)
    inert = "inert"  # read by `cortex build`, not by a running server


class Section(BaseModel):
    """Every part of the Cortexfile: unknown keys are errors, values are frozen.

    `applies` is how edits of the section's settings reach a running server, for those that do not
    say otherwise (`setting(..., applies=...)`); a section without one inherits its parent's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    applies: ClassVar[Applies | None] = None


def setting(
    default: Any = ...,
    description: str = "",
    *,
    flag: str | None = None,
    applies: Applies | None = None,
    **kw: Any,
) -> Any:
    """A documented field. `flag` names its `cortex start` option (derived, never hand-listed); `applies`
    overrides its section's reload behaviour."""
    extra: JsonDict = {"flag": flag} if flag else {}
    if applies is not None:
        extra["reload"] = applies.value
    return Field(default, description=description, json_schema_extra=extra or None, **kw)


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


def _check_proxy_url(value: str) -> str:
    if "@" in value:  # user:password@ (checked first: the other messages quote the URL)
        raise ValueError(
            "the proxy URL holds credentials: put them in network.proxy.username and network.proxy.password "
            "(a secret reference such as ${env:PROXY_PASSWORD}), so they are masked and kept out of the config hash"
        )
    if value.lower().startswith(("socks4", "socks5")):
        raise ValueError("SOCKS proxies are not supported: use an http:// or https:// proxy")
    return _check_url(value, ("http", "https"))


ProxyUrl = Annotated[str, AfterValidator(_check_proxy_url)]
Origin = Annotated[str, AfterValidator(_check_origin)]
Sha256 = Annotated[str, AfterValidator(_check_sha256)]
Port = Annotated[int, Field(ge=1, le=65535)]
