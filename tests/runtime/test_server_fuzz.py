"""Schemathesis against the running server's own /openapi.json, every check on: no 5xx, every status and body
as documented, and no request the document allows refused (a client or code generator trusts the document)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.cortex_server import MODEL_BLOCK, MODEL_ID, StartServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the fuzzer alone may run for 540 s
HOOKS = Path(__file__).with_name("fuzz_hooks.py")
EMBEDDING_MODEL = "gemma-embed"
MODELS = (
    MODEL_BLOCK
    + f"  - id: {EMBEDDING_MODEL}\n    preset: gemma3-270m-q4km\n    context_size: 1024\n    embeddings: true\n"
)
# The server-side cap keeps each generation short whatever max_tokens the fuzzer picks.
FUZZ_SERVER = (
    "server:\n  limits:\n    max_tokens: 8\n    request_timeout_s: 60\ndata:\n  conversations:\n    enabled: true\n"
)
# A schema-valid request may still meet the server's bounds: its time limit (408) and its queue (429).
# A request the document forbids may be refused for its size first (413: a list past its maxItems can be megabytes).
CONFIG = """\
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "408", "429"]

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
"""


def test_fuzzing_the_api_from_its_openapi_document_finds_no_server_error_and_no_refused_valid_request(
    start_cortex: StartServer, tmp_path: Path
) -> None:
    server = start_cortex(FUZZ_SERVER, models=MODELS)
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", f"{server.base_url}/openapi.json",
        "--phases", "examples,coverage,fuzzing", "--max-examples", "10",
        "--workers", "1", "--seed", "1", "--generation-database", "none", "--request-timeout", "90", "--no-color",
    ]  # fmt: skip
    hooks_folder = tmp_path / "hooks"  # on PYTHONPATH alone: tests/runtime/http would shadow the standard `http`
    hooks_folder.mkdir()
    shutil.copy(HOOKS, hooks_folder)
    hooks = {"SCHEMATHESIS_HOOKS": HOOKS.stem, "PYTHONPATH": str(hooks_folder), "CORTEX_FUZZ_MODEL": MODEL_ID,
             "CORTEX_FUZZ_EMBEDDING_MODEL": EMBEDDING_MODEL}  # fmt: skip
    env = {**os.environ, **hooks}
    # cwd: schemathesis reads schemathesis.toml and keeps a cache folder in its working directory
    result = subprocess.run(command, capture_output=True, text=True, timeout=540, env=env, cwd=tmp_path, check=False)
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    assert " passed" in report
    served = server.output()
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in served  # the fuzzer reached real generations
    assert '"POST /v1/completions HTTP/1.1" 200' in served
    assert '"POST /v1/embeddings HTTP/1.1" 200' in served
    assert '"POST /v1/responses HTTP/1.1" 200' in served
    assert '" 500 ' not in served
    with server.client() as http:
        assert http.get("/health").status_code == 200
