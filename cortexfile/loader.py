"""Load a Cortexfile in stages: parse -> layer (presets, recipe, env, flags) -> validate -> resolve.

`load()` collects every diagnostic before failing, so a user fixes all problems in one go.
It reads only the files it is given (and recipes/); it probes nothing on the host.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import recipes
from .errors import ConfigError, Diagnostic, Origin, Severity, errors_only, sort_diagnostics
from .layers import Layer, Merged, merge, resolve_paths
from .schema import Cortexfile
from .sources import env_layer, flag_layer, format_layer
from .validate import literal_secret_warnings, schema_diagnostics, semantic_diagnostics
from .yamlio import Parsed, parse_file

# Keys renamed since they were first documented: old name -> new name, per section path.
RENAMED: dict[tuple[str, ...], dict[str, str]] = {
    ("server", "cors"): {"allowed_origins": "origins"},
    ("logs",): {"max_log_lines": "max_lines"},
}


@dataclass
class Resolved:
    """The effective config and where each value came from."""

    path: Path
    config: Cortexfile
    merged: Merged
    warnings: list[Diagnostic] = field(default_factory=list)

    def origin(self, path: tuple[str | int, ...]) -> Origin:
        return self.merged.values.get(path) or Origin("default")


@dataclass
class Inputs:
    path: Path
    environ: Mapping[str, str] = field(default_factory=dict)
    flags: Mapping[str, str] = field(default_factory=dict)
    format_defaults: tuple[str, Mapping[str, Any]] | None = None
    cwd: Path = field(default_factory=Path.cwd)


def load(path: Path | str, **kwargs: Any) -> Resolved:
    """Load, layer and validate; raise ConfigError listing every error (warnings included)."""
    inputs = Inputs(Path(path), **kwargs)
    parsed = parse_file(inputs.path)
    diagnostics = _check_document(parsed, str(inputs.path))
    if diagnostics:
        raise ConfigError(diagnostics)
    file, notes = _file_layer(parsed, inputs.path)
    env, env_notes = env_layer(inputs.environ, inputs.cwd)
    flags, flag_notes = flag_layer(inputs.flags, inputs.cwd)
    notes += env_notes + flag_notes
    layers = [*_format(inputs), *_recipe(file, env, flags, notes), file, env, flags]
    return _validated(inputs.path, merge(layers), notes)


def load_from_environment(path: Path | str, flags: Mapping[str, str] | None = None, **kwargs: Any) -> Resolved:
    return load(path, environ=dict(os.environ), flags=flags or {}, **kwargs)


def _check_document(parsed: Parsed, source: str) -> list[Diagnostic]:
    here = Origin(source, 1, 1)
    if parsed.data is None:
        return [Diagnostic(here, "", "the file is empty; a Cortexfile starts with `version: 1`")]
    if not isinstance(parsed.data, dict):
        kind = "a list" if isinstance(parsed.data, list) else "a single value"
        return [Diagnostic(here, "", f"a Cortexfile is a mapping of keys (version, server, models, ...), not {kind}")]
    return []


def _file_layer(parsed: Parsed, path: Path) -> tuple[Layer, list[Diagnostic]]:
    layer = Layer(str(path), parsed.data, parsed.positions.values, parsed.positions.keys)
    notes = _apply_renames(layer) + _apply_presets(layer)
    # The folder as named, not where a symlink leads: a Kubernetes ConfigMap links each file into a
    # timestamped folder that the next update deletes, while the named folder stays.
    resolve_paths(layer, path.absolute().parent)
    return layer, notes


def _apply_renames(layer: Layer) -> list[Diagnostic]:
    notes = []
    for section, renames in RENAMED.items():
        node: Any = layer.data
        for part in section:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        for old, new in renames.items():
            if old in node and new not in node:
                node[new] = node.pop(old)
                _move(layer, (*section, old), (*section, new))
                origin = layer.keys[(*section, new)]
                key = ".".join((*section, old))
                notes.append(Diagnostic(origin, key, f"renamed to `{new}`", severity=Severity.warning))
    return notes


def _move(layer: Layer, old: tuple[str, ...], new: tuple[str, ...]) -> None:
    for table in (layer.values, layer.keys):
        for known in [k for k in table if k[: len(old)] == old]:
            table[new + known[len(old) :]] = table.pop(known)


def _apply_presets(layer: Layer) -> list[Diagnostic]:
    models = layer.data.get("models")
    if not isinstance(models, list):
        return []
    notes = []
    for index, entry in enumerate(models):
        if isinstance(entry, dict) and isinstance(entry.get("preset"), str):
            notes += _apply_preset(layer, index, entry)
    return notes


def _apply_preset(layer: Layer, index: int, entry: dict[str, Any]) -> list[Diagnostic]:
    name = entry["preset"]
    where = ("models", index, "preset")
    try:
        preset = recipes.load("models", name, "model")
    except KeyError:
        return [recipes.unknown("models", name, layer.values.get(where), f"models[{index}].preset")]
    for key, value in preset.body.items():
        if key not in entry:
            entry[key] = value
            for known, origin in preset.positions.values.items():
                if known[:1] == (key,):
                    layer.values[("models", index, *known)] = origin
    return []


def _recipe(file: Layer, env: Layer, flags: Layer, notes: list[Diagnostic]) -> list[Layer]:
    for layer in (flags, env, file):
        name = layer.data.get("target", {}).get("hardware") if isinstance(layer.data.get("target"), dict) else None
        if name is None:
            continue
        if not isinstance(name, str):
            return []  # the schema reports the wrong type
        try:
            return [recipes.hardware_layer(name)]
        except KeyError:
            notes.append(recipes.unknown("hardware", name, layer.values.get(("target", "hardware")), "target.hardware"))
            return []
    return []


def _format(inputs: Inputs) -> list[Layer]:
    if inputs.format_defaults is None:
        return []
    name, values = inputs.format_defaults
    return [format_layer(name, values)]


def _validated(path: Path, merged: Merged, notes: list[Diagnostic]) -> Resolved:
    notes = notes + semantic_diagnostics(merged) + literal_secret_warnings(merged)
    try:
        config = Cortexfile.model_validate(merged.data)
    except ValidationError as exc:
        raise ConfigError(sort_diagnostics(notes + schema_diagnostics(exc, merged))) from None
    if errors_only(notes):
        raise ConfigError(sort_diagnostics(notes))
    return Resolved(path, config, merged, sort_diagnostics(notes))
