"""Connection-level bounds uvicorn lacks: a deadline for each request's headers, a deadline for a client
that stops reading its answer, and a cap on the connections one client address holds open. Without them
a few dozen connections that never finish their headers, or never read, fill
`server.limits.max_connections`, and everyone else gets 503.

h11 (through uvicorn's own protocol) still parses every byte; this subclass only adds a timer and a
counter around it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from typing import ClassVar

from menlo_cortex.cortexfile.schema.server import Limits
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("cortex.connections")


class ConnectionGuard:
    """The live limits and the open connections per client address, shared by every connection."""

    def __init__(self, limits: Limits) -> None:
        self.update(limits)
        self._open: Counter[str] = Counter()

    def update(self, limits: Limits) -> None:
        self.header_timeout_s = limits.header_timeout_s
        self.send_timeout_s = limits.send_timeout_s
        self.per_client = limits.max_connections_per_client

    def admit(self, peer: str) -> bool:
        client = client_key(peer)
        if self._open[client] >= self.per_client:
            return False
        self._open[client] += 1
        return True

    def release(self, peer: str) -> None:
        client = client_key(peer)
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]


def client_key(peer: str) -> str:
    """One client per IPv4 address, and per /64 for IPv6: one host holds a whole /64 of addresses."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if address.version == 6 and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address.ipv4_mapped or address) if address.version == 6 else str(address)


class GuardedH11Protocol(H11Protocol):
    guard: ClassVar[ConnectionGuard]
    _peer: str | None = None
    _header_timer: asyncio.TimerHandle | None = None
    _send_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = self.client[0] if self.client else ""
        if not self.guard.admit(peer):
            log.warning("refused a connection from %s: %d already open", peer, self.guard.per_client)
            transport.close()
            return
        self._peer = peer
        self._arm()

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
            self.guard.release(self._peer)
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


def protocol_class(limits: Limits) -> type[GuardedH11Protocol]:
    """A protocol class of its own for one server, holding that server's guard."""
    return type("CortexH11Protocol", (GuardedH11Protocol,), {"guard": ConnectionGuard(limits)})
