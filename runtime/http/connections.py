"""Connection-level bounds uvicorn lacks: a deadline for each TLS handshake and each request's headers, a
deadline for a client that stops reading its answer, a cap on the connections one client (an IPv4 address,
an IPv6 /56) holds open, and room kept under `server.limits.max_connections`: when it is full, the oldest
connection that is waiting for a request gives way to the new one. Without them a few dozen connections
that never finish a handshake or their headers, or never read, from one host or from several, fill the
limit, and everyone else (/health included) gets 503.

TLS is started here, not by asyncio's server (which tells the protocol only once a handshake is done, so
handshakes in progress were counted nowhere: thousands from one address ran the process out of files).
A connection is admitted first, by its address: handshakes in progress are capped per client like open
connections, and in all at max_connections, the oldest giving way.

h11 (through uvicorn's own protocol) still parses every byte; this subclass only adds a timer and a
counter around it, and a serial number in each request's `state` that no other connection ever has.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import socket
import ssl
from collections import Counter
from typing import ClassVar

from menlo_cortex.cortexfile.schema.server import Limits
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("cortex.connections")
CONNECTION = "cortex.connection"  # key in each request's scope["state"]: its connection's serial number
_serials = itertools.count(1)


class ConnectionGuard:
    """The live limits, the open connections per client and all of them, oldest first; shared by every
    connection of one server."""

    def __init__(self, limits: Limits) -> None:
        self.update(limits)
        self.tls: ssl.SSLContext | None = None  # the live certificate: each handshake takes it as it starts
        self._open: Counter[str] = Counter()
        self._live: dict[GuardedH11Protocol, None] = {}  # in the order they came
        self._handshaking: Counter[str] = Counter()
        self._handshakes: dict[asyncio.Transport, str] = {}  # in the order they came, by client

    def update(self, limits: Limits) -> None:
        self.header_timeout_s = limits.header_timeout_s
        self.send_timeout_s = limits.send_timeout_s
        self.per_client = limits.max_connections_per_client
        self.max_connections = limits.max_connections

    def begin_handshake(self, transport: asyncio.Transport, peer: str) -> bool:
        client = client_key(peer)
        if self._handshaking[client] + self._open[client] >= self.per_client:
            return False
        while len(self._handshakes) >= self.max_connections:  # the oldest handshake gives way
            oldest = next(iter(self._handshakes))
            self.end_handshake(oldest)
            oldest.abort()
        self._handshaking[client] += 1
        self._handshakes[transport] = client
        return True

    def end_handshake(self, transport: asyncio.Transport) -> None:
        client = self._handshakes.pop(transport, None)
        if client is not None:
            self._handshaking[client] -= 1
            if self._handshaking[client] <= 0:
                del self._handshaking[client]

    def admit(self, connection: GuardedH11Protocol, peer: str) -> bool:
        client = client_key(peer)
        if self._open[client] >= self.per_client:
            return False
        self._make_room()
        self._open[client] += 1
        self._live[connection] = None
        return True

    def _make_room(self) -> None:
        """Stay below max_connections (uvicorn answers 503 at it), the new one included: the oldest connections
        waiting for a request go (each leaves the count when it is closed)."""
        excess = len(self._live) - (self.max_connections - 2)
        for live in list(self._live):
            if excess <= 0:
                return
            if live.waiting():
                live.give_way()
                excess -= 1

    def release(self, connection: GuardedH11Protocol, peer: str) -> None:
        self._live.pop(connection, None)
        client = client_key(peer)
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]


def client_key(peer: str) -> str:
    """One client per IPv4 address, and per /56 for IPv6: a host, or a home, is routed a /56 or a /64 of them."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if address.version == 6 and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/56", strict=False))
    return str(address.ipv4_mapped or address) if address.version == 6 else str(address)


def _no_delay(transport: asyncio.Transport) -> None:
    """Send each write at once. asyncio turns Nagle's algorithm off only on sockets made with proto IPPROTO_TCP, and
    a listening socket from socket.create_server has proto 0, as its connections do: a streamed answer's second
    write (the first chunk after the headers) then waited for the client's delayed ACK, about 40 ms on Linux, in
    every time to first token (and again whenever the client fell quiet)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # the connection is already gone
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class GuardedH11Protocol(H11Protocol):
    guard: ClassVar[ConnectionGuard]
    _peer: str | None = None
    _header_timer: asyncio.TimerHandle | None = None
    _send_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _no_delay(transport)
        context = self.guard.tls
        if context is not None and transport.get_extra_info("sslcontext") is None:
            self._begin_tls(transport, context)
        else:
            self._connected(transport)

    def _begin_tls(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        peername = transport.get_extra_info("peername")
        peer = str(peername[0]) if peername else ""
        if not self.guard.begin_handshake(transport, peer):
            log.warning("refused a connection from %s: %d already open or opening", peer, self.guard.per_client)
            transport.abort()
            return
        transport.pause_reading()  # the ClientHello waits in the socket for start_tls
        self.loop.create_task(self._start_tls(transport, context))

    async def _start_tls(self, transport: asyncio.Transport, context: ssl.SSLContext) -> None:
        early = _EarlyData()
        try:
            secure = await self.loop.start_tls(
                transport, early, context, server_side=True, ssl_handshake_timeout=self.guard.header_timeout_s
            )
        except (OSError, RuntimeError):  # refused, too slow, or gone: nothing was served
            transport.abort()
            return
        finally:
            self.guard.end_handshake(transport)
        if secure is None or early.lost or transport.is_closing():
            transport.abort()
            return
        secure.set_protocol(self)
        self._connected(secure)
        early.hand_over(self)

    def _connected(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self.app_state = {**self.app_state, CONNECTION: next(_serials)}  # uvicorn copies it into each scope
        peer = self.client[0] if self.client else ""
        if not self.guard.admit(self, peer):
            log.warning("refused a connection from %s: %d already open", peer, self.guard.per_client)
            transport.close()
            return
        self._peer = peer
        self._arm()

    def waiting(self) -> bool:
        """Connected, and waiting for a request (its headers not all here yet, or kept alive between two)."""
        return self._peer is not None and self._awaiting_headers() and not self.transport.is_closing()

    def give_way(self) -> None:
        log.info("closed a connection from %s, the oldest waiting, to make room for a new one", self._peer)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers() and self._header_timer is None:
            self._arm()  # the next request on a kept-alive connection
        super().data_received(data)
        if not self._awaiting_headers():
            self._disarm()

    def pause_writing(self) -> None:
        """The send buffer is full: the client has this long to read before the connection is dropped."""
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.guard.send_timeout_s, self._not_reading)

    def resume_writing(self) -> None:
        self._stop_send_timer()
        super().resume_writing()

    def _stop_send_timer(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _not_reading(self) -> None:
        self._send_timer = None
        if not self.transport.is_closing():
            log.info("dropped a connection from %s: its answer was left unread", self._peer)
        self.transport.abort()  # close() would wait for the buffer to drain: it never would

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_send_timer()
        self._disarm()
        if self._peer is not None:
            self.guard.release(self, self._peer)
            self._peer = None
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.guard.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._awaiting_headers() and not self.transport.is_closing():
            log.info("closed a connection from %s: no complete request headers in time", self._peer)
            self.transport.close()


class _EarlyData(asyncio.Protocol):
    """What a TLS connection says between the end of its handshake and the HTTP protocol taking it over."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = self.lost = False

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> bool:
        self.eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def hand_over(self, protocol: GuardedH11Protocol) -> None:
        if self.data:
            protocol.data_received(bytes(self.data))
        if self.eof:
            protocol.eof_received()


def protocol_class(limits: Limits) -> type[GuardedH11Protocol]:
    """A protocol class of its own for one server, holding that server's guard."""
    return type("CortexH11Protocol", (GuardedH11Protocol,), {"guard": ConnectionGuard(limits)})
