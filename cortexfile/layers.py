"""Layers of raw values with the origin of each, merged by precedence.

defaults < format defaults < hardware recipe < Cortexfile < CORTEX_* env < CLI flags.
Mappings merge key by key; a list is replaced whole by a higher layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Origin, Path_
from .table import setting_at


@dataclass
class Layer:
    name: str  # "format docker", "recipe x86-64-avx2", "file", "env", "flags"
    data: dict[str, Any]
    values: dict[Path_, Origin] = field(default_factory=dict)
    keys: dict[Path_, Origin] = field(default_factory=dict)

    def origin(self, path: Path_) -> Origin:
        return self.values.get(path) or Origin(self.name)


@dataclass
class Merged:
    data: dict[str, Any]
    values: dict[Path_, Origin]
    keys: dict[Path_, Origin]

    def origin_of(self, path: Path_, *, key: bool = False) -> Origin | None:
        """The origin of `path`, or of its nearest ancestor that has one."""
        table = self.keys if key else self.values
        for end in range(len(path), -1, -1):
            found = table.get(path[:end]) or self.values.get(path[:end])
            if found is not None:
                return found
        return None


def merge(layers: list[Layer]) -> Merged:
    merged = Merged({}, {}, {})
    for layer in layers:
        _merge_into(merged, layer, layer.data, ())
    return merged


def _merge_into(merged: Merged, layer: Layer, value: Any, path: Path_) -> None:
    if isinstance(value, dict):
        if path and not isinstance(_get(merged.data, path), dict):
            _drop_below(merged, path)
            _set(merged.data, path, {})
        if path in layer.values or path not in merged.values:
            merged.values[path] = layer.origin(path)
        for key, child in value.items():
            child_path = (*path, key)
            if child_path in layer.keys:
                merged.keys[child_path] = layer.keys[child_path]
            _merge_into(merged, layer, child, child_path)
        return
    _drop_below(merged, path)
    _set(merged.data, path, value)
    for known, origin in layer.values.items():
        if known[: len(path)] == path:
            merged.values[known] = origin
    for known, origin in layer.keys.items():
        if len(known) > len(path) and known[: len(path)] == path:
            merged.keys[known] = origin
    merged.values[path] = layer.origin(path)


def _drop_below(merged: Merged, path: Path_) -> None:
    for table in (merged.values, merged.keys):
        for known in [k for k in table if len(k) > len(path) and k[: len(path)] == path]:
            del table[known]


def _get(data: Any, path: Path_) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _set(data: dict[str, Any], path: Path_, value: Any) -> None:
    node: Any = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def resolve_paths(layer: Layer, base: Path) -> None:
    """Make relative path settings of `layer` absolute against `base`; expand `~`."""
    _resolve_in(layer.data, (), base)


def _resolve_in(value: Any, path: Path_, base: Path) -> Any:
    if isinstance(value, dict):
        for key, child in value.items():
            value[key] = _resolve_in(child, (*path, key), base)
        return value
    if isinstance(value, list):
        return [_resolve_in(item, (*path, i), base) for i, item in enumerate(value)]
    setting = setting_at(path)
    if isinstance(value, str) and setting is not None:
        if setting.is_path or (path[-1:] == ("source",) and _is_local_source(value)):
            return str(_absolute(value, base))
        if setting.is_secret and value.startswith("${file:") and value.endswith("}"):
            return "${file:" + str(_absolute(value[7:-1].strip(), base)) + "}"
    return value


def _is_local_source(value: str) -> bool:
    return bool(value) and "://" not in value


def _absolute(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path
