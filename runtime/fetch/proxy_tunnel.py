"""HTTPS through a proxy's CONNECT tunnel, where the proxy itself may be reached over TLS (TLS inside TLS).

http.client's own `set_tunnel` always speaks plain TCP to the proxy, and `ssl` cannot wrap an
SSLSocket again, so the inner TLS session runs on an SSLObject over memory buffers here.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
from collections.abc import Callable
from functools import partial
from typing import TypeVar, cast

from .netsettings import ProxyRoute

T = TypeVar("T")
RECEIVE_BYTES = 65536


class TunnelConnection(http.client.HTTPConnection):
    """An HTTPS connection to `host` whose bytes go through `proxy`."""

    default_port = 443

    def __init__(self, host: str, port: int, *, proxy: ProxyRoute, tls: ssl.SSLContext, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._proxy, self._tls = proxy, tls

    def connect(self) -> None:
        outer = socket.create_connection((self._proxy.host, self._proxy.port), self.timeout)
        try:
            if self._proxy.tls is not None:
                outer = self._proxy.tls.wrap_socket(outer, server_hostname=self._proxy.host)
            open_tunnel(outer, self.host, self.port, self._proxy.authorization)
            if isinstance(outer, ssl.SSLSocket):
                self.sock = TlsInTls(outer, self._tls, self.host)
            else:
                self.sock = self._tls.wrap_socket(outer, server_hostname=self.host)
        except BaseException:
            outer.close()
            raise


def open_tunnel(sock: socket.socket, host: str, port: int, authorization: str | None) -> None:
    """Ask the proxy to connect to host:port; raise OSError naming its answer when it refuses."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    lines += [f"Proxy-Authorization: {authorization}"] if authorization else []
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    # The proxy sends nothing after its answer until we speak TLS, so the buffered read takes only the answer.
    response = http.client.HTTPResponse(sock, method="CONNECT")
    try:
        response.begin()
    finally:
        response.close()
    if response.status != 200:
        raise OSError(f"the proxy refused the tunnel: {response.status} {response.reason}")


class TlsInTls:
    """The part of a socket http.client uses (sendall, makefile, close), as TLS over an SSLSocket."""

    def __init__(self, outer: ssl.SSLSocket, context: ssl.SSLContext, server_hostname: str):
        self._outer = outer
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
        self._readers, self._closed = 0, False
        self._pump(self._tls.do_handshake)

    def _pump(self, operation: Callable[[], T]) -> T:
        """Run a TLS operation, moving bytes between the memory buffers and the outer socket as it needs."""
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                self._flush()
                data = self._outer.recv(RECEIVE_BYTES)
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
                continue
            self._flush()
            return result

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self._outer.sendall(pending)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._pump(partial(self._tls.write, view))
            view = view[written:]

    def recv_into(self, buffer: memoryview) -> int:
        try:
            # SSLObject.read fills any writable buffer and then returns a count (typeshed says bytes).
            return cast(int, self._pump(partial(self._tls.read, len(buffer), buffer)))
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # a close, clean or not: the end of the stream
            return 0

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        self._readers += 1
        return io.BufferedReader(_Reader(self))

    def close(self) -> None:
        # Like a socket: an open response reader keeps the connection until it is closed too.
        self._closed = True
        if self._readers == 0:
            self._outer.close()

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closed and self._readers == 0:
            self._outer.close()


class _Reader(io.RawIOBase):
    def __init__(self, connection: TlsInTls):
        self._connection = connection

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._connection.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._connection.reader_closed()
        super().close()
