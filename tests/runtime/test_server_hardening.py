"""Hostile clients and hostile inputs against the real `cortex start` (issue: hardening).

Each test sends what an attacker would: slow or partial requests, cross-site browser requests, secrets
that would break headers, connections kept across a listener move. Raw sockets where httpx would
behave too well.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from tests.runtime.cortex_server import MODEL_ID, CortexServer, StartServer
from tests.runtime.reload_load import config_status, wait_for
from tests.runtime.test_reload_server import rewrite
from tests.runtime.test_server_security import make_self_signed

pytestmark = pytest.mark.slow
CHAT = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
HEALTH_WITHIN_S = 1.0


@contextmanager
def raw_connection(server: CortexServer, first_bytes: bytes = b"") -> Iterator[socket.socket]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        if first_bytes:
            sock.sendall(first_bytes)
        yield sock
    finally:
        sock.close()


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True when the server closes the connection within `within_s` (reads end, or reset)."""
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def read_to_end(sock: socket.socket, within_s: float) -> bytes:
    """Everything the server sends until it closes; headers and body may come in separate packets."""
    deadline, received = time.monotonic() + within_s, b""
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received


def health_answers_quickly(server: CortexServer) -> float:
    """Seconds /health took on a new connection; fails unless it is 200."""
    started = time.monotonic()
    response = httpx.get(f"{server.base_url}/health", timeout=HEALTH_WITHIN_S * 5)
    assert response.status_code == 200, response.text
    return time.monotonic() - started


def health_comes_back(server: CortexServer, deadline_s: float = 3.0) -> None:
    """After clients close, the server notices within moments: /health answers on a new connection."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            health_answers_quickly(server)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "/health did not come back"
            time.sleep(0.05)


# Finding 5: connection exhaustion.


def test_connections_that_never_finish_their_headers_are_closed_and_free_the_limit(
    start_cortex: StartServer,
) -> None:
    """Sends: as many connections as max_connections, each with half a request line and nothing more."""
    limits = "server:\n  limits:\n    max_connections: 6\n    header_timeout_s: 1\n    max_connections_per_client: 64\n"
    server = start_cortex(limits)
    with ExitStack() as stack:
        slow = [stack.enter_context(raw_connection(server, b"GET /health HTTP/1.1\r\nHo")) for _ in range(6)]
        assert all(closed_by_server(sock, within_s=5) for sock in slow)
        assert health_answers_quickly(server) < HEALTH_WITHIN_S


def test_one_client_cannot_hold_more_connections_than_its_share(start_cortex: StartServer) -> None:
    """Sends: idle connections from one address, one more than max_connections_per_client allows."""
    server = start_cortex("server:\n  limits:\n    max_connections_per_client: 3\n    header_timeout_s: 30\n")
    with ExitStack() as stack:
        held = [stack.enter_context(raw_connection(server)) for _ in range(3)]
        extra = stack.enter_context(raw_connection(server))
        assert closed_by_server(extra, within_s=3)
        assert not closed_by_server(held[0], within_s=0.5)
    health_comes_back(server)  # the share is back once they are closed


def test_a_body_that_trickles_in_gets_408_and_health_keeps_answering(start_cortex: StartServer) -> None:
    """Sends: headers announcing 100 bytes of JSON, then 10 bytes, then nothing."""
    server = start_cortex("server:\n  limits:\n    body_timeout_s: 1\n")
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"model": '
    )
    with raw_connection(server, head) as sock:
        assert health_answers_quickly(server) < HEALTH_WITHIN_S
        reply = read_to_end(sock, within_s=5).decode(errors="replace")  # the 408 says Connection: close
    assert reply.startswith("HTTP/1.1 408"), reply
    assert "body_timeout_s" in reply


# Finding 4: cross-site requests.


def test_a_web_page_cannot_drive_a_keyless_loopback_server(start_cortex: StartServer) -> None:
    """Sends: what a browser sends for a form or fetch() from another site, to a server without keys."""
    server = start_cortex()
    with server.client() as http:
        as_text = http.post("/v1/chat/completions", content=json.dumps(CHAT), headers={"Content-Type": "text/plain"})
        assert as_text.status_code == 415
        foreign = http.post("/v1/chat/completions", json=CHAT, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403
        fetch = http.post("/v1/chat/completions", json=CHAT, headers={"Sec-Fetch-Site": "cross-site"})
        assert fetch.status_code == 403
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200  # non-browser clients: unchanged


# Finding 7: secrets in error messages.


def test_a_token_with_a_line_break_stops_the_start_without_being_shown(start_cortex: StartServer) -> None:
    """Sends: an API key from the environment with a newline inside it."""
    token = "sk-line-1\nsk-line-2"
    server = start_cortex(
        'server:\n  auth:\n    api_keys: ["${env:BROKEN_KEY}"]\n', env={"BROKEN_KEY": token}, ready=False
    )
    assert server.process.wait(timeout=60) == 2
    output = server.output()
    assert "environment variable BROKEN_KEY holds control characters" in output
    assert "sk-line" not in output


def test_a_secret_file_that_is_not_text_is_refused_on_reload_without_its_bytes(
    start_cortex: StartServer, tmp_path: Path
) -> None:
    """Sends: a key file rewritten with bytes that are not UTF-8, while the server runs."""
    key_file = tmp_path / "key"
    key_file.write_text("sk-good-key\n", encoding="utf-8")
    keys = {"CORTEX_SERVER__AUTH__API_KEYS": f'["${{file:{key_file}}}"]'}  # the operator's: outside the file's folder
    body = "server:\n  auth:\n    allow_unauthenticated: false\n"
    server = start_cortex(body, env=keys)
    holder = {"Authorization": "Bearer sk-good-key"}
    key_file.write_bytes(b"sk-\xff\xfe-secret-bytes\n")
    rewrite(server, body + "logs:\n  level: debug\n")  # a reload reads the key again
    wait_for(lambda: config_status(server)["last_reload_error"] is not None, "the refusal", server)
    message = config_status(server, holder)["last_reload_error"]["message"]  # type: ignore[index]
    assert f"secret file {key_file} is not UTF-8 text" in message
    for shown in (message, server.output()):
        assert "secret-bytes" not in shown
        assert "\\xff" not in shown


# Finding 9: a listener move keeps no old connection.


def generation_reached(server: CortexServer, generation: int) -> bool:
    """On the same port the old socket closes just before the new one binds (README, hot reload): a poll
    that lands in that instant is refused or reset, and simply polls again."""
    try:
        return config_status(server)["generation"] == generation
    except httpx.TransportError:
        return False


def read_until(sock: socket.socket, done: Callable[[bytes], bool], received: bytes = b"") -> bytes:
    """Everything read from `sock` until `done(all of it)`; fails when the server closes first."""
    deadline = time.monotonic() + 60
    while not done(received):
        assert time.monotonic() < deadline, received[-300:]
        chunk = sock.recv(65536)
        assert chunk, f"closed by the server after: {received[-300:]!r}"
        received += chunk
    return received


def test_a_connection_from_before_a_move_to_loopback_gets_no_more_answers(start_cortex: StartServer) -> None:
    """Sends: a streamed completion (with the key) on a connection opened while the server listened on all
    interfaces; the Cortexfile moves it to loopback without keys mid-stream; then, on the same connection,
    a request without a key. It must not be answered by the new, keyless app."""
    keyed = 'server:\n  host: 0.0.0.0\n  auth:\n    api_keys: ["${env:MOVE_KEY}"]\n'
    server = start_cortex(keyed, env={"MOVE_KEY": "sk-move"})
    body = json.dumps({**CHAT, "max_tokens": 200, "stream": True}).encode()
    stream = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sk-move\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with raw_connection(server, stream) as old:
        begun = read_until(old, lambda data: b"data: " in data)
        assert begun.startswith(b"HTTP/1.1 200")
        rewrite(server, "server:\n  host: 127.0.0.1\n")
        wait_for(lambda: generation_reached(server, 2), "the move", server)
        # The stream ends as it began: it was let in under the old address and keys.
        read_until(old, lambda data: data.endswith(b"0\r\n\r\n"), begun)
        with suppress(BrokenPipeError, ConnectionResetError):
            old.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert closed_by_server(old, within_s=3)
    assert health_answers_quickly(server) < HEALTH_WITHIN_S


# Round two, finding 2: a client that stops reading.


def test_a_connection_whose_answers_are_left_unread_is_dropped(start_cortex: StartServer) -> None:
    """Sends: 120 pipelined requests for the OpenAPI document (about 3 MB of answers) on a connection with the
    smallest receive window, and never reads. The server's send buffer fills; after send_timeout_s the
    connection is dropped (before, it was held until the client closed it)."""
    server = start_cortex("server:\n  limits:\n    send_timeout_s: 2\n")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.connect(("127.0.0.1", server.port))
    with closing(sock):
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 120)
        wait_for(lambda: "its answer was left unread" in server.output(), "the drop", server, deadline_s=30)
        assert health_answers_quickly(server) < HEALTH_WITHIN_S
        assert closed_by_server(sock, within_s=5)


# Round two, finding 4: connection exhaustion before any key check.


def test_a_tls_connection_that_never_says_hello_is_closed_at_the_header_deadline(
    start_cortex: StartServer, tmp_path: Path
) -> None:
    """Sends: a TCP connection to a TLS listener, and no ClientHello. Before: held for asyncio's 60 s."""
    cert, key = make_self_signed(tmp_path)
    limits = "  limits:\n    header_timeout_s: 1\n"
    server = start_cortex(f"server:\n  tls:\n    cert: {cert}\n    key: {key}\n{limits}", ca_file=cert)
    with raw_connection(server) as sock:
        started = time.monotonic()
        assert closed_by_server(sock, within_s=10)
    assert time.monotonic() - started < 5


def test_idle_connections_from_several_addresses_give_way_to_new_ones(start_cortex: StartServer) -> None:
    """Sends: idle connections from four loopback addresses, each within its own share, together as many as
    max_connections. Before: /health got 503 until the header deadline; now the oldest idle ones give way."""
    server = start_cortex(
        "server:\n  limits:\n    max_connections: 8\n    max_connections_per_client: 2\n    header_timeout_s: 60\n"
    )
    with ExitStack() as stack:
        for host in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"):
            for _ in range(2):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=10, source_address=(host, 0))
                stack.enter_context(closing(sock))
        time.sleep(0.2)  # all accepted by now
        for _ in range(3):
            assert health_answers_quickly(server) < HEALTH_WITHIN_S
    assert "the oldest waiting, to make room for a new one" in server.output()


def test_handshakes_in_progress_are_counted_and_capped(start_cortex: StartServer, tmp_path: Path) -> None:
    """Sends: 200 TCP connections from one address to a TLS listener, none saying hello (the review: asyncio
    told the protocol only after a handshake, so none was counted, and thousands ran the process out of files).
    Now those past the client's share are closed at once, the share waits out the deadline, and /health (over
    TLS, from another address) answers meanwhile."""
    cert, key = make_self_signed(tmp_path)
    limits = "  limits:\n    max_connections_per_client: 4\n    header_timeout_s: 30\n"
    server = start_cortex(f"server:\n  tls:\n    cert: {cert}\n    key: {key}\n{limits}", ca_file=cert)
    with ExitStack() as stack:
        socks = [stack.enter_context(closing(socket.create_connection(("127.0.0.1", server.port), timeout=10,
                                                                          source_address=("127.0.0.9", 0))))
                 for _ in range(200)]  # fmt: skip
        closed = sum(closed_by_server(sock, within_s=0.05) for sock in socks)
        assert closed >= 195, closed  # all but the client's share, at once
        with server.client(timeout=HEALTH_WITHIN_S * 5) as http:
            started = time.monotonic()
            assert http.get("/health").status_code == 200
            assert time.monotonic() - started < HEALTH_WITHIN_S
    assert "already open or opening" in server.output()
