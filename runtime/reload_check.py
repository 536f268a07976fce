"""Check a candidate config exactly as `cortex start` checked the first one.

Same loader, same env snapshot and flags (so values pinned by them stay pinned), the start
preflight with its security rules, and the TLS pair actually loaded. Every problem is a
located `Diagnostic`, raised together as a `ConfigError`.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from menlo_cortex.cortexfile import formats
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin, Severity
from menlo_cortex.cortexfile.loader import Resolved, load
from menlo_cortex.cortexfile.preflight import Phase, preflight
from menlo_cortex.cortexfile.table import settings
from menlo_cortex.cortexfile.yamlio import Parsed, parse_file

PINNED_SOURCES = ("env ", "flag ")


@dataclass(frozen=True)
class StartInputs:
    """What the process started with besides the file: read once, used for every reload."""

    path: Path
    environ: Mapping[str, str] = field(default_factory=dict)
    flags: Mapping[str, str] = field(default_factory=dict)
    format_defaults: tuple[str, Mapping[str, Any]] | None = None  # `cortex start --defaults NAME`

    @classmethod
    def of(cls, resolved: Resolved, environ: Mapping[str, str]) -> StartInputs:
        return cls(resolved.path, dict(environ), start_flags(resolved), start_format(resolved))


def start_format(resolved: Resolved) -> tuple[str, Mapping[str, Any]] | None:
    """The output format's defaults layer the process started over, recovered from the values' origins."""
    for origin in resolved.merged.values.values():
        words = origin.source.split()
        if len(words) == 3 and words[0] == "format" and words[2] == "default":
            return formats.get(words[1]).loader_argument()
    return None


def start_flags(resolved: Resolved) -> dict[str, str]:
    """The setting flags given to `cortex start`, as text, recovered from where each value came from."""
    found = {}
    for setting in settings():
        if setting.flag and resolved.origin(setting.path).source == f"flag {setting.flag}":
            found[setting.flag] = _as_text(_value_at(resolved.merged.data, setting.path))
    return found


def _as_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list) else str(value)


def _value_at(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def load_candidate(inputs: StartInputs) -> Resolved:
    """Load and check the file as it is now; ConfigError with every problem when it cannot be served."""
    resolved = load(
        inputs.path, environ=dict(inputs.environ), flags=dict(inputs.flags), format_defaults=inputs.format_defaults
    )
    problems = preflight(resolved, Phase.start, inputs.environ) + tls_problems(resolved)
    if problems:
        raise ConfigError(problems)
    return resolved


def tls_problems(resolved: Resolved) -> list[Diagnostic]:
    """A certificate and key that do not load (or do not match) would break every new connection."""
    tls = resolved.config.server.tls
    if tls.cert is None or tls.key is None:
        return []
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls.cert, tls.key)
    except (ssl.SSLError, OSError) as exc:
        where = resolved.origin(("server", "tls", "cert"))
        return [Diagnostic(where, "server.tls", f"cannot use {tls.cert} with {tls.key}: {exc}")]
    return []


def file_values(path: Path) -> Parsed | None:
    """The Cortexfile's own values and positions, before any layer; None when it cannot be parsed."""
    try:
        return parse_file(path)
    except ConfigError:
        return None


def overridden(resolved: Resolved, before: Parsed | None, after: Parsed | None) -> list[Diagnostic]:
    """File edits to settings pinned by an env var or a flag: kept as pinned, reported as warnings."""
    if before is None or after is None:
        return []
    notes = []
    for setting in settings():
        origin = resolved.origin(setting.path)
        if not origin.source.startswith(PINNED_SOURCES):
            continue
        if _value_at(before.data, setting.path) != _value_at(after.data, setting.path):
            where = after.positions.values.get(setting.path) or Origin(str(resolved.path))
            message = f"changed in the file but pinned by {origin.source}: not applied"
            notes.append(Diagnostic(where, setting.key, message, severity=Severity.warning))
    return notes
