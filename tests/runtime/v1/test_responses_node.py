"""The official openai Node SDK (scripts/node-openai.sh) on the Responses API of a real `cortex start`: plain,
streamed, a function call round trip, json_schema output and previous_response_id across two calls."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cache_dir
from tests.runtime.cortex_server import MODEL_ID, CortexServer, running

KEY = "node-client-key-0123456789"
CLIENT = Path(__file__).with_name("responses_client.cjs")


@pytest.fixture(scope="module")
def node_path() -> str:
    found = sorted(cache_dir().glob("node-openai-*/node_modules"))
    if not found or shutil.which("node") is None:
        pytest.fail("node or the openai Node SDK is missing: run `make setup` (scripts/node-openai.sh)")
    return str(found[-1])


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, cortex_command: list[str], test_data_dir: Path
) -> Iterator[CortexServer]:
    body = "server:\n  auth:\n    api_keys: ['${env:NODE_KEY}']\n"
    with running(tmp_path_factory.mktemp("node"), cortex_command, test_data_dir, body, env={"NODE_KEY": KEY}) as served:
        yield served


def test_the_node_sdk_speaks_the_responses_api(server: CortexServer, node_path: str) -> None:
    done = subprocess.run(
        ["node", str(CLIENT), f"{server.base_url}/v1", KEY, MODEL_ID],
        env={**os.environ, "NODE_PATH": node_path}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["plain"]["id"].startswith("resp_")
    assert seen["plain"]["text"]
    kinds = [kind for kind, _ in seen["events"]]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in kinds
    assert kinds[-1] in ("response.completed", "response.incomplete")
    assert [number for _, number in seen["events"]] == list(range(len(kinds)))
    assert seen["tool"]["name"] == "weather"
    assert isinstance(seen["tool"]["arguments"], dict)
    assert seen["tool"]["answer"] == "message"
    assert isinstance(seen["json"]["n"], int)
    assert seen["continued"]["previous"] == seen["plain"]["id"]
    plain_tokens = seen["plain"]["usage"]["input_tokens"] + seen["plain"]["usage"]["output_tokens"]
    assert seen["continued"]["usage"]["input_tokens"] > plain_tokens
    assert seen["retrieved"]
