"""Models that sleep, on the real model through `cortex start`: unloaded after idle_unload_s without a request,
said so by /v1/models and /ready, loaded again by the next requests (several at once, none failing), and put to
sleep or woken on request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.runtime.cortex_server import MODEL_ID, CortexServer, launch

KEY = "sleep-key-0123456789"
IDLE_S = 2
SLEEP_WAIT_S = 120  # the model sleeps 2 s after its last request; the check runs at least every 2 s
MODELS = f"""\
models:
  - id: {MODEL_ID}
    preset: gemma3-270m-q4km
    context_size: 512
    idle_unload_s: {IDLE_S}
"""


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, cortex_command: list[str], test_data_dir: Path
) -> Iterator[CortexServer]:
    body = "server:\n  auth:\n    api_keys: ['${env:SLEEP_KEY}']\n"
    running = launch(tmp_path_factory.mktemp("sleeping"), cortex_command, test_data_dir, body,
                     env={"SLEEP_KEY": KEY}, models=MODELS)  # fmt: skip
    try:
        running.wait_ready()
        yield running
    finally:
        running.terminate()


def http(server: CortexServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)


def state(client: httpx.Client) -> str:
    return str(client.get(f"/v1/models/{MODEL_ID}").json()["state"])


def chat(client: httpx.Client) -> int:
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    return client.post("/v1/chat/completions", json=body).status_code


def wait_until_asleep(client: httpx.Client) -> None:
    deadline = time.monotonic() + SLEEP_WAIT_S
    while state(client) != "sleeping":
        assert time.monotonic() < deadline, f"still {state(client)} after {SLEEP_WAIT_S} s"
        time.sleep(0.5)


def test_an_idle_model_sleeps_and_the_next_requests_wake_it(server: CortexServer) -> None:
    with http(server) as client:
        assert chat(client) == 200
        wait_until_asleep(client)
        listed = client.get("/v1/models").json()["data"]
        assert [(model["id"], model["state"]) for model in listed] == [(MODEL_ID, "sleeping")]
        assert {"id": MODEL_ID, "state": "sleeping", "error": None, "gpu_layers": None} in client.get("/ready").json()[
            "models"
        ]
        assert client.get("/health").json()["models"] == [{"id": MODEL_ID, "state": "sleeping", "gpu_layers": None}]
        assert 'cortex_model_loaded{model="gemma"} 0' in client.get("/metrics").text
        with ThreadPoolExecutor(4) as pool:  # they wait in the queue while it loads, as for a changed model
            assert list(pool.map(lambda _: chat(client), range(4))) == [200] * 4
        assert state(client) == "ready"
    assert f"model `{MODEL_ID}` sleeps (no request for {IDLE_S} s)" in server.output()


def test_a_model_is_put_to_sleep_and_woken_on_request(server: CortexServer) -> None:
    with http(server) as client:
        assert client.post(f"/v1/models/{MODEL_ID}/load").json() == {"id": MODEL_ID, "state": "ready"}
        assert client.post(f"/v1/models/{MODEL_ID}/unload").json() == {"id": MODEL_ID, "state": "sleeping"}
        assert client.post(f"/v1/models/{MODEL_ID}/load").json() == {"id": MODEL_ID, "state": "ready"}
        assert client.post("/v1/models/nope/unload").status_code == 404
    refused = httpx.post(f"{server.base_url}/v1/models/{MODEL_ID}/unload", timeout=60)
    assert refused.status_code == 401  # key holders only
