"""What a hostile server meets when Cortex downloads from it: a deadline on each hop's connection and
headers, however slowly the bytes come; and no redirect from a public host into the appliance's own network
(loopback, private, link-local), checked on the address actually connected to."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from menlo_cortex.runtime.fetch.http_get import HttpFailure, http_get, is_public
from menlo_cortex.runtime.fetch.netsettings import NetSettings, tls_context

ROOT = Path(__file__).resolve().parents[3]


def settings(timeout: float) -> NetSettings:
    return NetSettings(
        user_agent="test",
        tls=tls_context(True, True),
        proxy=None,
        hub=("https", "huggingface.co", 443),
        hub_authorization=None,
        timeout=timeout,
    )


@contextmanager
def dripping_server() -> Iterator[int]:
    """Answers every connection with a status line sent one byte every 0.3 s, for ever."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        with conn:
            conn.recv(4096)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                if stop.wait(0.3):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


def test_headers_dripped_a_byte_at_a_time_end_at_the_deadline() -> None:
    """Before: each byte came within the read timeout, so the download waited for as long as the server liked."""
    with dripping_server() as port:
        started = time.monotonic()
        with pytest.raises(HttpFailure), http_get(f"http://127.0.0.1:{port}/model.gguf", settings(timeout=2)):
            pass
    assert time.monotonic() - started < 6


# Run inside a network namespace of its own, where a public address can be on loopback without touching the host.
REDIRECT_SCRIPT = textwrap.dedent("""
    import http.server, sys, threading
    from menlo_cortex.runtime.fetch.http_get import HttpFailure, http_get, is_public
    from menlo_cortex.runtime.fetch.netsettings import NetSettings, ProxyRoute, tls_context

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/model.gguf":
                self.send_response(302)
                self.send_header("Location", sys.argv[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_response(200)
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"GGUF")
        def log_message(self, *args):
            pass

    class Proxy(Handler):  # relays the public host's answer: the redirect
        def do_GET(self):
            self.path = "/model.gguf"
            super().do_GET()

    for address in ("8.8.4.4", "127.0.0.1", "10.9.8.7"):
        server = http.server.ThreadingHTTPServer((address, 8080), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = None
    if len(sys.argv) > 3:  # through a proxy on 10.9.8.1:3128, which the hosts in argv[3] bypass
        relay = http.server.ThreadingHTTPServer(("10.9.8.1", 3128), Proxy)
        threading.Thread(target=relay.serve_forever, daemon=True).start()
        proxy = ProxyRoute("http", "10.9.8.1", 3128, None, None, tuple(sys.argv[3].split(",")))
    tls = tls_context(True, True)
    net = NetSettings(user_agent="test", tls=tls, proxy=proxy, hub=None, hub_authorization=None, timeout=5)
    try:
        with http_get(sys.argv[2], net) as response:
            print("fetched", response.read())
    except HttpFailure as exc:
        print("refused", exc)
""")


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (network namespaces)")
    name = f"cortex-fetch-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        inside = ["ip", "netns", "exec", name, "ip", "addr", "add"]
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run([*inside, "8.8.4.4/32", "dev", "lo"], check=True)  # a public address, in here only
        subprocess.run([*inside, "10.9.8.7/32", "dev", "lo"], check=True)
        subprocess.run([*inside, "10.9.8.1/32", "dev", "lo"], check=True)  # the proxy's
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def fetch_in(namespace: str, first: str, redirect_to: str, *no_proxy: str) -> str:
    """`no_proxy`: through a proxy, which these hosts bypass."""
    command = ["ip", "netns", "exec", namespace, sys.executable, "-c", REDIRECT_SCRIPT, redirect_to, first]
    command += [",".join(no_proxy)] if no_proxy else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("inside", ["http://127.0.0.1:8080/x", "http://10.9.8.7:8080/x", "http://localhost:8080/x"])
def test_a_public_host_cannot_redirect_into_the_appliances_network(namespace: str, inside: str) -> None:
    said = fetch_in(namespace, "http://8.8.4.4:8080/model.gguf", inside)
    assert said.startswith("refused"), said
    assert "a redirect from a public host to a loopback, private or link-local address is refused" in said


def test_a_public_host_may_redirect_to_another_public_one(namespace: str) -> None:
    assert fetch_in(namespace, "http://8.8.4.4:8080/model.gguf", "http://8.8.4.4:8080/x") == "fetched b'GGUF'"


def test_a_source_the_cortexfile_names_inside_the_network_may_redirect_inside_it(namespace: str) -> None:
    """A local mirror is the operator's choice, and so are its own redirects."""
    assert fetch_in(namespace, "http://10.9.8.7:8080/model.gguf", "http://127.0.0.1:8080/x") == "fetched b'GGUF'"


def test_a_redirect_relayed_by_the_proxy_cannot_lead_past_it_into_the_network(namespace: str) -> None:
    """The first hop went through the proxy (to the internet); its redirect names a host the proxy is bypassed for,
    on a private address. Before: no address had been checked, so none was refused."""
    said = fetch_in(namespace, "http://hub.example:8080/model.gguf", "http://10.9.8.7:8080/x", "10.9.8.7")
    assert said.startswith("refused"), said
    assert "a redirect from a public host to a loopback, private or link-local address is refused" in said


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("10.0.0.1", False),
        ("64:ff9b::a00:1", False),  # NAT64 to 10.0.0.1: Python alone calls it global
        ("64:ff9b::808:808", True),
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("::ffff:127.0.0.1", False),
        ("2001:4860:4860::8888", True),
    ],
)
def test_an_ipv6_address_carrying_a_private_ipv4_one_is_not_public(address: str, public: bool) -> None:
    assert is_public(address) is public
