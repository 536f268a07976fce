"""The published JSON Schema of the Cortexfile (committed as cortexfile.schema.json)."""

from __future__ import annotations

from typing import Any

from .schema import Cortexfile

SCHEMA_ID = "https://menlo.ai/cortex/cortexfile.schema.json"


def schema_document() -> dict[str, Any]:
    document = Cortexfile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **document}
