"""SBOM documents checked by the SPDX project's own validator (spdx-tools), not by our reading of the spec."""

from __future__ import annotations

from pathlib import Path

from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document


def spdx_problems(path: Path) -> list[str]:
    """Every problem the validator finds in the SPDX 2.3 JSON document at `path` (empty: valid)."""
    document = parse_file(str(path))
    return [str(message.validation_message) for message in validate_full_spdx_document(document, "SPDX-2.3")]
