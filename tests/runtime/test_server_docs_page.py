"""The offline /docs page: its script renders every operation of the server's real OpenAPI document."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.runtime.http.docs import full_document
from menlo_cortex.runtime.v1.openapi import openapi_document

HERE = Path(__file__).parent
DOCS_JS = HERE.parent.parent / "runtime" / "http" / "static" / "docs.js"


def render(document: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document), encoding="utf-8")
    command = [node, str(HERE / "docs_harness.js"), str(DOCS_JS), str(spec)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    rendered: dict[str, Any] = json.loads(result.stdout)
    return rendered


def test_the_docs_script_lists_every_operation_with_a_ready_to_send_body(tmp_path: Path) -> None:
    document = full_document(openapi_document(), keys_required=True, public_metrics=False)
    rendered = render(document, tmp_path)
    expected = [
        (method, path, item[method].get("summary", "")) for path, item in document["paths"].items() for method in item
    ]
    assert rendered["operations"] == [f"{method} {path}{summary}" for method, path, summary in expected]
    assert rendered["requests"] == [{"url": "/openapi.json", "method": "GET"}]
    assert document["info"]["title"] in rendered["title"]
    assert any("messages" in body for body in rendered["textareas"])  # chat: the required fields, filled in
