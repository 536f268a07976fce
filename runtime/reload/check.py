"""Check a candidate config exactly as `cortex start` checked the first one.

Same loader, same env snapshot and flags (so values pinned by them stay pinned), the start
preflight with its security rules, and the TLS pair actually loaded. Every problem is a
located `Diagnostic`, raised together as a `ConfigError`.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin, Severity
from menlo_cortex.cortexfile.loader import Inputs, Resolved, read, resolve
from menlo_cortex.cortexfile.preflight import Phase, preflight
from menlo_cortex.cortexfile.table import settings
from menlo_cortex.cortexfile.yamlio import Parsed, parse_file

PINNED_SOURCES = ("env ", "flag ")


def _value_at(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def load_candidate(inputs: Inputs) -> Resolved:
    """Load and check the file as it is now, with the env snapshot, flags and format layer the process
    started with (`Resolved.inputs`); ConfigError with every problem when it cannot be served."""
    resolved = resolve(read(inputs), inputs.format_defaults)
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
