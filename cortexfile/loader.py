"""Load a Cortexfile in stages: parse -> layer (presets, recipe, env, flags) -> validate -> resolve.

`load()` collects every diagnostic before failing, so a user fixes all problems in one go.
It reads only the files it is given (and recipes/); it probes nothing on the host.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
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
from .secret_rules import secret_diagnostics
from .sources import env_layer, flag_layer, format_layer
from .validate import literal_secret_warnings, schema_diagnostics, semantic_diagnostics
from .yamlio import Parsed, parse_file

# Keys renamed since they were first documented: old name -> new name, per section path.
RENAMED: dict[tuple[str, ...], dict[str, str]] = {
    ("server", "cors"): {"allowed_origins": "origins"},
    ("logs",): {"max_log_lines": "max_lines"},
}


FormatDefaults = tuple[str, Mapping[str, Any]]  # (format name, {dotted key: value})


@dataclass(frozen=True)
class Inputs:
    """Everything a load reads besides recipes: the file, the env snapshot, the flags, the format layer."""

    path: Path
    environ: Mapping[str, str] = field(default_factory=dict)
    flags: Mapping[str, str] = field(default_factory=dict)
    format_defaults: FormatDefaults | None = None
    cwd: Path = field(default_factory=Path.cwd)


@dataclass(frozen=True)
class Document:
    """A Cortexfile read once: its bytes, and its layers before any format defaults or recipe are applied."""

    inputs: Inputs
    file: Layer
    env: Layer
    flags: Layer
    notes: tuple[Diagnostic, ...]
    source: bytes = b""  # the file as read and validated, byte for byte

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source).hexdigest()


@dataclass
class Resolved:
    """The effective config, where each value came from, and what it was loaded from."""

    path: Path
    config: Cortexfile
    merged: Merged
    warnings: list[Diagnostic] = field(default_factory=list)
    document: Document | None = None

    def origin(self, path: tuple[str | int, ...]) -> Origin:
        return self.merged.values.get(path) or Origin("default")

    @property
    def inputs(self) -> Inputs:
        return self.document.inputs if self.document else Inputs(self.path)

    @property
    def source(self) -> bytes:
        """The Cortexfile's bytes as they were validated: every build bakes these, never the file read again."""
        if self.document is None:
            raise ValueError(f"{self.path}: loaded without its document, so without the bytes it validated")
        return self.document.source

    def view(self, format_defaults: FormatDefaults | None) -> Resolved:
        """The same Cortexfile over another format's defaults layer (or none), without reading it again."""
        if self.document is None:
            return load(self.path, format_defaults=format_defaults)
        return resolve(self.document, format_defaults)


def load(path: Path | str, **kwargs: Any) -> Resolved:
    """Load, layer and validate; raise ConfigError listing every error (warnings included)."""
    inputs = Inputs(Path(path), **kwargs)
    return resolve(read(inputs), inputs.format_defaults)


def load_from_environment(path: Path | str, flags: Mapping[str, str] | None = None, **kwargs: Any) -> Resolved:
    return load(path, environ=dict(os.environ), flags=flags or {}, **kwargs)


def read(inputs: Inputs) -> Document:
    """Parse the file and turn it, the env and the flags into layers; ConfigError when it cannot be parsed."""
    parsed = parse_file(inputs.path)
    diagnostics = _check_document(parsed, str(inputs.path))
    if diagnostics:
        raise ConfigError(diagnostics)
    file, notes = _file_layer(parsed, inputs.path)
    env, env_notes = env_layer(inputs.environ, inputs.cwd)
    flags, flag_notes = flag_layer(inputs.flags, inputs.cwd)
    return Document(inputs, file, env, flags, tuple(notes + env_notes + flag_notes), parsed.raw)


def resolve(document: Document, format_defaults: FormatDefaults | None = None) -> Resolved:
    """Layer the document over a format's defaults and its recipe, then validate."""
    file, env, flags = (copy.deepcopy(layer) for layer in (document.file, document.env, document.flags))
    notes = list(document.notes)
    layers = [*_format(format_defaults), *_recipe(file, env, flags, notes), file, env, flags]
    inputs = dataclasses.replace(document.inputs, format_defaults=format_defaults)
    return _validated(dataclasses.replace(document, inputs=inputs), merge(layers), notes)


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
    resolve_paths(layer, Path(os.path.normpath(path.absolute().parent)))  # `-f ../x/Cortexfile.yaml`: no `..`
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


def _format(format_defaults: FormatDefaults | None) -> list[Layer]:
    if format_defaults is None:
        return []
    name, values = format_defaults
    return [format_layer(name, values)]


def _validated(document: Document, merged: Merged, notes: list[Diagnostic]) -> Resolved:
    notes = notes + semantic_diagnostics(merged) + literal_secret_warnings(merged)
    notes += secret_diagnostics(merged, document.inputs.environ)
    try:
        config = Cortexfile.model_validate(merged.data)
    except ValidationError as exc:
        raise ConfigError(sort_diagnostics(notes + schema_diagnostics(exc, merged))) from None
    if errors_only(notes):
        raise ConfigError(sort_diagnostics(notes))
    return Resolved(document.inputs.path, config, merged, sort_diagnostics(notes), document)
