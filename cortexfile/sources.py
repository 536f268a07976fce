"""Layers from outside the Cortexfile: CORTEX_* env vars, CLI flags, format defaults."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import Diagnostic, Origin, Severity
from .layers import Layer, resolve_paths
from .table import ENV_PREFIX, Setting, by_path, settings

LEAKY_SECRET = "a literal secret on the command line leaks through process lists and shell history"


def env_layer(environ: Mapping[str, str], cwd: Path) -> tuple[Layer, list[Diagnostic]]:
    layer = Layer("env", {})
    for setting in settings():
        if setting.env_var in environ:
            value = _from_text(setting, environ[setting.env_var])
            _put(layer, setting, value, Origin(f"env {setting.env_var}"))
    resolve_paths(layer, cwd)
    return layer, _unknown_env(environ)


def _unknown_env(environ: Mapping[str, str]) -> list[Diagnostic]:
    known = {s.env_var for s in settings()}
    found = []
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and "__" in name and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}?" if close else None
            found.append(Diagnostic(Origin(f"env {name}"), "", "not a Cortex setting; ignored", hint, Severity.warning))
    return found


def flag_layer(flags: Mapping[str, str], cwd: Path) -> tuple[Layer, list[Diagnostic]]:
    """`flags` maps a flag (`--port`) to the text given on the command line."""
    by_flag = {s.flag: s for s in settings() if s.flag}
    layer, notes = Layer("flags", {}), []
    for flag, text in flags.items():
        setting = by_flag[flag]
        value: Any = _from_text(setting, text)
        if setting.is_secret:
            value, note = secret_flag(flag, text)
            notes += note
        _put(layer, setting, value, Origin(f"flag {flag}"))
    resolve_paths(layer, cwd)
    return layer, notes


def secret_flag(flag: str, text: str) -> tuple[str, list[Diagnostic]]:
    """A secret flag's text as a reference (`@FILE` -> `${file:FILE}`), and a warning for a literal."""
    if text.startswith("@"):
        return "${file:" + text[1:] + "}", []
    if text.startswith("${"):
        return text, []
    hint = f"use {flag} @FILE or {flag} '${{env:NAME}}'"
    return text, [Diagnostic(Origin(f"flag {flag}"), "", LEAKY_SECRET, hint, Severity.warning)]


def format_layer(name: str, values: Mapping[str, Any]) -> Layer:
    """A build format's own defaults (e.g. containers listen on 0.0.0.0), keyed by dotted path."""
    layer = Layer(f"format {name}", {})
    for key, value in values.items():
        setting = by_path()[tuple(key.split("."))]
        _put(layer, setting, value, Origin(f"format {name} default"))
    return layer


def _from_text(setting: Setting, text: str) -> Any:
    """Env and flag values are text: lists are JSON or comma-separated."""
    if not setting.is_list:
        return text
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            parsed = json.loads(stripped)
        except json.JSONDecodeError:
            return text  # validation reports the wrong type at this source
        return parsed
    return [item.strip() for item in stripped.split(",") if item.strip()]


def _put(layer: Layer, setting: Setting, value: Any, origin: Origin) -> None:
    data = layer.data
    for part in setting.path[:-1]:
        data = data.setdefault(part, {})
    data[setting.path[-1]] = value
    layer.values[setting.path] = origin
    if isinstance(value, list):
        for index in range(len(value)):
            layer.values[(*setting.path, index)] = origin
