"""The config hash: sha256 of the canonical JSON of the resolved config, secrets left out."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .schema import Cortexfile
from .table import settings


def canonical_json(config: Cortexfile) -> str:
    data = config.model_dump(mode="json")
    for setting in settings():
        if setting.is_secret:
            _drop(data, setting.path)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def config_hash(config: Cortexfile) -> str:
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


def _drop(data: dict[str, Any], path: tuple[str, ...]) -> None:
    for part in path[:-1]:
        data = data[part]
    data.pop(path[-1], None)
