"""Shared pieces of the schema: the strict base model, `setting()`, and common value types."""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from pathlib import Path
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
    lines: bool = False,
    **kw: Any,
) -> Any:
    """A documented field. `flag` names its `cortex start` option (derived, never hand-listed); `applies`
    overrides its section's reload behaviour; `lines`: a secret of several lines (a private key)."""
    extra: JsonDict = {"flag": flag} if flag else {}
    if lines:
        extra["lines"] = True
    if applies is not None:
        extra["reload"] = applies.value
    return Field(default, description=description, json_schema_extra=extra or None, **kw)


_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


# How a boolean setting may be spelled where it arrives as text (env vars, flags, YAML's on/off).
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
# Values that cross into another language (unit files, Dockerfiles, shell lines) are checked here
# and escaped again where they are written (images/escape.py). A path is absolute, has no `..`
# (it is compared as written, never resolved: /etc/cortex/../shadow is not under /etc/cortex), no
# control character; `.` segments and doubled slashes are normalised away when it is read.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The characters a path written into the appliance's files may hold (data.path, logs.path).
SAFE_PATH_CHARS = "A-Za-z0-9._/@+-"
_UNSAFE_PATH_CHAR = re.compile(f"[^{SAFE_PATH_CHARS}]")


def _no_control(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"{what} cannot hold a control character (a newline, a tab, ...)")
    return value


def check_path(value: Path) -> Path:
    """An absolute path without `..` segments or control characters."""
    text = _no_control(str(value), "a path")
    if not value.is_absolute():
        raise ValueError(f"`{text}` is not an absolute path")
    if ".." in value.parts:
        raise ValueError(f"`{text}` has a `..` segment: write the path without it (paths are not resolved)")
    if text.startswith("//"):
        raise ValueError(f"`{text}` starts with `//`: write it with one slash")
    return value


def check_appliance_path(value: Path) -> Path:
    """`check_path`, in the safe character set: the path is written into unit files, Dockerfiles
    and shell scripts."""
    check_path(value)
    unsafe = sorted(set(_UNSAFE_PATH_CHAR.findall(str(value))))
    if unsafe:
        shown = " ".join(f"`{c}`" for c in unsafe)
        raise ValueError(
            f"`{value}` holds {shown}: this path is written into unit files, Dockerfiles and shell scripts, "
            "so it may hold only letters, digits and `._/@+-`"
        )
    return value


def word_rule(pattern: str, rule: str) -> AfterValidator:
    """A validator that refuses a string not matching `pattern`, naming `rule` (the value is echoed
    only when it holds no control character)."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(
                f"{rule} (this one holds a control character)" if _CONTROL.search(value) else f"`{value}`: {rule}"
            )
        return value

    return AfterValidator(check)


def _check_host(value: str) -> str:
    _no_control(value, "a host")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise ValueError(f"`{value}` has an IPv6 zone (`%...`): listen on the address without it")
    if address is not None:
        return value
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
NormalPath = Annotated[Path, AfterValidator(check_path)]
AppliancePath = Annotated[Path, AfterValidator(check_appliance_path)]
