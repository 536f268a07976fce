"""Start, stop and limits of the real `cortex start` process: SIGTERM, exit codes, queue and connections."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.runtime.cortex_server import MODEL_ID, CortexServer, StartServer, free_port, write_cortexfile

pytestmark = pytest.mark.slow
COUNTING = {"model": MODEL_ID, "prompt": "Count from 1 to 300: 1, 2, 3, 4,", "stream": True}


def sse_events(lines: Iterator[str]) -> Iterator[str]:
    """The data of each server-sent event, up to and including [DONE]."""
    for line in lines:
        if line.startswith("data: "):
            yield line.removeprefix("data: ")
            if line == "data: [DONE]":
                return


def wait_until_refused(port: int, deadline_s: float = 10.0) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


def test_sigterm_stops_accepting_finishes_the_request_in_flight_and_exits_0(start_cortex: StartServer) -> None:
    server = start_cortex("server:\n  limits:\n    shutdown_grace_s: 30\n")
    with server.client() as http, http.stream("POST", "/v1/completions", json={**COUNTING, "max_tokens": 160}) as reply:
        events = sse_events(reply.iter_lines())
        first = next(events)
        server.process.send_signal(signal.SIGTERM)
        refused_while_draining = wait_until_refused(server.port) and server.process.poll() is None
        try:
            rest = list(events)
        except httpx.TransportError:
            pytest.fail(f"the stream was cut:\n{server.output()}")
    assert refused_while_draining, server.output()
    assert rest[-1] == "[DONE]"
    finish = [json.loads(event)["choices"][0]["finish_reason"] for event in [first, *rest[:-1]]]
    assert finish[-1] in ("length", "stop")
    assert server.process.wait(timeout=30) == 0, server.output()


def test_sigterm_gives_up_on_a_request_after_the_grace_period(start_cortex: StartServer) -> None:
    server = start_cortex("server:\n  limits:\n    shutdown_grace_s: 1\n")
    with server.client() as http, http.stream("POST", "/v1/completions", json={**COUNTING, "max_tokens": 900}) as reply:
        events = sse_events(reply.iter_lines())
        next(events)  # ~900 tokens: far longer than the grace period
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        with pytest.raises(httpx.TransportError):
            list(events)
    assert server.process.wait(timeout=30) == 0, server.output()
    assert time.monotonic() - signalled < 8, server.output()


def run_start(cortex_command: list[str], tmp_path: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cortexfile = write_cortexfile(tmp_path, "")
    command = [*cortex_command, "start", "-f", str(cortexfile), "--datapath", str(data), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_a_port_in_use_is_one_clear_line_and_exit_1(
    cortex_command: list[str], tmp_path: Path, test_data_dir: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_start(cortex_command, tmp_path, test_data_dir, "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"cortex: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert "Traceback" not in result.stdout


def test_an_unusable_tls_certificate_is_a_config_error(
    cortex_command: list[str], tmp_path: Path, test_data_dir: Path
) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate\n", encoding="utf-8")
    args = ("--port", str(free_port()), "--ssl-cert-path", str(cert), "--ssl-key-path", str(cert))
    result = run_start(cortex_command, tmp_path, test_data_dir, *args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "server.tls" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_public_bind_without_keys_is_refused_with_exit_2(
    cortex_command: list[str], tmp_path: Path, test_data_dir: Path
) -> None:
    result = run_start(cortex_command, tmp_path, test_data_dir, "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 2
    assert "api_keys" in result.stderr


def test_logs_go_to_a_file_in_the_log_folder_with_request_ids(start_cortex: StartServer, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    server = start_cortex(f"logs:\n  path: {logs}\n  max_lines: 100\n")
    with server.client() as http:
        for index in range(120):
            http.get("/health", headers={"x-request-id": f"rotate-{index}"})
    written = [logs / "cortex.log", *sorted(logs.glob("cortex.log.*"))]
    assert len(written) >= 2  # rotated at 100 lines
    assert all(len(path.read_text(encoding="utf-8").splitlines()) <= 100 for path in written)
    assert "[rotate-119]" in written[0].read_text(encoding="utf-8")
    assert (logs / "llama.log").is_file()


def test_when_every_connection_is_busy_a_new_request_gets_503(start_cortex: StartServer) -> None:
    """Connections in the middle of a request hold their places (idle ones would give way: test_server_hardening)."""
    server = start_cortex("server:\n  limits:\n    max_connections: 3\n    body_timeout_s: 30\n")
    head = b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: 100\r\n\r\n{"
    busy = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
    try:
        for connection in busy:
            connection.sendall(head)
        time.sleep(0.2)  # both requests are in progress
        with server.client() as http:
            assert http.get("/health").status_code == 503
    finally:
        for connection in busy:
            connection.close()
    with server.client() as http:
        assert http.get("/health").status_code == 200


async def flood(server: CortexServer, requests: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
        body = {**COUNTING, "stream": False, "max_tokens": 24}
        return await asyncio.gather(*(http.post("/v1/completions", json=body) for _ in range(requests)))


def test_a_flood_gets_429_with_retry_after_and_the_server_stays_up(start_cortex: StartServer) -> None:
    server = start_cortex("server:\n  limits:\n    queue_size: 1\n")
    responses = asyncio.run(flood(server, 6))
    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) == {200, 429}, statuses
    rejected = next(response for response in responses if response.status_code == 429)
    assert rejected.headers["retry-after"].isdigit()
    assert rejected.json()["error"]["type"] == "rate_limit_error"
    with server.client() as http:
        assert http.post("/v1/completions", json={**COUNTING, "stream": False, "max_tokens": 2}).status_code == 200


def test_a_client_that_disconnects_frees_its_place(start_cortex: StartServer) -> None:
    server = start_cortex("server:\n  limits:\n    queue_size: 0\n")
    with server.client() as http:
        with http.stream("POST", "/v1/completions", json={**COUNTING, "max_tokens": 900}) as reply:
            next(sse_events(reply.iter_lines()))  # generating now; ~900 tokens would take many seconds
        # the connection is closed: the generation must stop and free the only place
        deadline = time.monotonic() + 5
        status = 0
        while time.monotonic() < deadline and status != 200:
            status = http.post("/v1/completions", json={**COUNTING, "stream": False, "max_tokens": 2}).status_code
            time.sleep(0.05)  # poll interval; the deadline bounds the wait
    assert status == 200, server.output()
