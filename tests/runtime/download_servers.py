"""Real servers on loopback for the store and download tests: files, redirects, TLS, a recording proxy."""

from __future__ import annotations

import hashlib
import http.client
import os
import selectors
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from menlo_cortex.cortexfile.loader import load
from menlo_cortex.cortexfile.schema import Cortexfile


def gguf_bytes(size: int = 64 * 1024, seed: int = 1) -> bytes:
    """A small file that starts like a GGUF model; `seed` makes distinct contents."""
    pattern = hashlib.sha256(str(seed).encode()).digest()
    return b"GGUF" + (pattern * (size // len(pattern) + 1))[: size - 4]


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_config(folder: Path, source: str, sha256: str | None, network: str | None = None) -> Cortexfile:
    """Load a real Cortexfile (written to `folder`) with one model `tiny` and an optional `network:` mapping."""
    lines = ["version: 1", "models:", "  - id: tiny", f"    source: {source}"]
    lines += [f"    sha256: {sha256}"] if sha256 else []
    lines += [f"network: {network}"] if network else []
    path = folder / "Cortexfile.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # The file names the hub or proxy (a test server): the operator consents to its test secrets going there.
    return load(path, environ={**os.environ, "CORTEX_SECRET_ENV": "CORTEX_TEST_*"}).config


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    declared_length: int | None = None  # a Content-Length that differs from the body: truncation, huge files
    ranges: bool = False  # answer `Range: bytes=N-` (or `N-M`) with 206 and the rest of the body (or that part)
    drip_s: float | None = None  # send the body one byte every drip_s seconds


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads
    routes: dict[str, Route]
    seen: list[Seen]
    stopping: threading.Event  # ends a dripping answer when the test is done


class _FileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server = cast(_Server, self.server)
        server.seen.append(Seen("GET", self.path, dict(self.headers.items())))
        route = server.routes.get(urlsplit(self.path).path, Route(b"not found", status=404))
        start, end = _range(self.headers.get("Range", "")) if route.ranges else (None, None)
        body, headers = route.body, dict(route.headers)
        if start is not None:
            end = min(len(body) - 1, len(body) - 1 if end is None else end)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
            body = body[start : end + 1]
        self.send_response(206 if start is not None else route.status)
        length = len(body) if route.declared_length is None else route.declared_length
        for name, value in {"Content-Length": str(length), **headers}.items():
            self.send_header(name, value)
        if route.declared_length is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if route.drip_s is None:
            self.wfile.write(body)
            return
        for index in range(len(body)):
            if server.stopping.wait(route.drip_s):
                return
            try:
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()
            except OSError:  # the client gave up
                return

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


def _range(header: str) -> tuple[int | None, int | None]:
    """`bytes=N-` -> (N, None); `bytes=N-M` -> (N, M); anything else -> (None, None)."""
    start, _, end = header.removeprefix("bytes=").partition("-")
    if not header.startswith("bytes=") or not start.isdigit() or not (end.isdigit() or end == ""):
        return None, None
    return int(start), int(end) if end else None


@dataclass
class Running:
    server: _Server
    scheme: str = "http"

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    @property
    def routes(self) -> dict[str, Route]:
        return self.server.routes

    @property
    def seen(self) -> list[Seen]:
        return self.server.seen


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> Iterator[Running]:
    server = _Server(("127.0.0.1", 0), handler)
    server.routes, server.seen, server.stopping = {}, [], threading.Event()
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Running(server, "https" if tls else "http")
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def file_server(tls: ssl.SSLContext | None = None) -> Iterator[Running]:
    with serving(_FileHandler, tls) as running:
        yield running


def self_signed_tls(folder: Path, name: str = "localhost") -> tuple[ssl.SSLContext, Path]:
    """A server TLS context with a fresh self-signed certificate for `name` only (made by openssl)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert


class _ProxyHandler(BaseHTTPRequestHandler):
    """A forward proxy that wants credentials: relays absolute-form GETs and tunnels CONNECT; records requests."""

    protocol_version = "HTTP/1.0"

    def _admitted(self) -> bool:
        cast(_Server, self.server).seen.append(Seen(self.command, self.path, dict(self.headers.items())))
        if "Proxy-Authorization" in self.headers:
            return True
        self.send_response(407, "Proxy Authentication Required")
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_GET(self) -> None:
        if not self._admitted():
            return
        target = urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.hostname or "", target.port or 80, timeout=10)
        with closing(upstream):
            upstream.request("GET", target.path, headers={"Host": target.netloc})
            with closing(upstream.getresponse()) as response:
                body = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

    def do_CONNECT(self) -> None:
        if not self._admitted():
            return
        host, _, port = self.path.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            _relay(self.connection, upstream)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while True:
            for key, _ in selector.select(timeout=10):
                source = cast(socket.socket, key.fileobj)
                data = source.recv(65536)
                if not data:
                    return
                while isinstance(source, ssl.SSLSocket) and source.pending():  # select() cannot see these
                    data += source.recv(source.pending())
                cast(socket.socket, key.data).sendall(data)


@contextmanager
def recording_proxy(tls: ssl.SSLContext | None = None) -> Iterator[Running]:
    with serving(_ProxyHandler, tls) as running:
        yield running
