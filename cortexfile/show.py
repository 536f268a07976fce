"""`cortex config show`: the effective config, each value with where it came from; secrets masked."""

from __future__ import annotations

import json
from typing import Any

from .errors import Path_, dotted
from .hashing import config_hash
from .loader import Resolved


def flatten(value: Any, path: Path_ = ()) -> list[tuple[Path_, Any]]:
    """Leaves of the dumped config; lists of scalars stay whole, lists of sections are opened."""
    if isinstance(value, dict):
        return [leaf for key, child in value.items() for leaf in flatten(child, (*path, key))]
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        return [leaf for index, item in enumerate(value) for leaf in flatten(item, (*path, index))]
    return [(path, value)]


def as_json(resolved: Resolved) -> str:
    dumped = resolved.config.model_dump(mode="json")
    origins = {dotted(path): str(resolved.origin(path)) for path, _ in flatten(dumped)}
    document = {"config": dumped, "origins": origins, "hash": config_hash(resolved.config)}
    return json.dumps(document, indent=2)


def as_text(resolved: Resolved) -> str:
    rows = [
        (dotted(path), json.dumps(value), str(resolved.origin(path)))
        for path, value in flatten(resolved.config.model_dump(mode="json"))
    ]
    key_width = max(len(key) for key, _, _ in rows)
    value_width = min(48, max(len(value) for _, value, _ in rows))
    lines = [f"{key:<{key_width}}  {value:<{value_width}}  # {origin}" for key, value, origin in rows]
    lines.append(f"# config hash: {config_hash(resolved.config)}")
    return "\n".join(lines)
