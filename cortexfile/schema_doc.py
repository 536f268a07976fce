"""The published JSON Schema of the Cortexfile (committed as cortexfile.schema.json).

Each setting carries `reload`: how an edit of it reaches a running server (see schema.base.Applies),
resolved from its own declaration or its section's.
"""

from __future__ import annotations

from typing import Any

from .schema import Cortexfile
from .schema.base import Applies, Section
from .table import section_fields

SCHEMA_ID = "https://menlo.ai/cortex/cortexfile.schema.json"


def schema_document() -> dict[str, Any]:
    document = Cortexfile.model_json_schema()
    for section, fields in section_fields().items():
        properties = _definition(document, section)["properties"]
        for name, applies in fields.items():
            properties[name]["reload"] = applies.value
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **document}


def _definition(document: dict[str, Any], section: type[Section]) -> dict[str, Any]:
    return document if section is Cortexfile else document["$defs"][section.__name__]


__all__ = ["Applies", "schema_document"]
