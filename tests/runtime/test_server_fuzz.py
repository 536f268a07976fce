"""Schemathesis against the running server's own /openapi.json: whatever it sends, never a 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cortex_server import MODEL_ID, StartServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the fuzzer alone may run for 540 s
HOOKS = Path(__file__).with_name("fuzz_hooks.py")
# The server-side cap keeps each generation short whatever max_tokens the fuzzer picks.
FUZZ_SERVER = "server:\n  limits:\n    max_tokens: 8\n    request_timeout_s: 30\n"


def test_fuzzing_the_api_from_its_openapi_document_finds_no_server_error(
    start_cortex: StartServer, tmp_path: Path
) -> None:
    server = start_cortex(FUZZ_SERVER)
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{server.base_url}/openapi.json",
        "--checks", "not_a_server_error", "--phases", "examples,coverage,fuzzing", "--max-examples", "10",
        "--workers", "1", "--seed", "1", "--generation-database", "none", "--request-timeout", "60", "--no-color",
    ]  # fmt: skip
    hooks = {"SCHEMATHESIS_HOOKS": HOOKS.stem, "PYTHONPATH": str(HOOKS.parent), "CORTEX_FUZZ_MODEL": MODEL_ID}
    env = {**os.environ, **hooks}
    # cwd: schemathesis keeps a cache folder in its working directory
    result = subprocess.run(command, capture_output=True, text=True, timeout=540, env=env, cwd=tmp_path, check=False)
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    assert " passed" in report
    served = server.output()
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in served  # the fuzzer reached real generations
    assert '"POST /v1/completions HTTP/1.1" 200' in served
    assert '" 500 ' not in served
    with server.client() as http:
        assert http.get("/health").status_code == 200
