"""The listening side of a hot reload: TLS files rotated in place, a new socket before the old one closes.

uvicorn serves the sockets it was given for its whole run; this swaps them underneath it with the
same protocol factory uvicorn uses, so connections on the old socket are still tracked by uvicorn
and finish (or are drained at shutdown) as usual.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import ssl
import weakref
from dataclasses import dataclass

import uvicorn
from menlo_cortex.cortexfile.schema.server import Server
from uvicorn.config import create_ssl_context

from ..reload.pipeline import ApplyError
from .connections import ConnectionGuard, GuardedH11Protocol

BACKLOG = 2048


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    tls: bool

    @classmethod
    def of(cls, server: Server) -> Address:
        return cls(server.host, server.port, server.tls.cert is not None)


class Listener:
    """Applies `server.host/port/tls/limits` changes to a running uvicorn server."""

    def __init__(self, server: uvicorn.Server) -> None:
        self.server = server

    async def apply(self, old: Server, new: Server) -> None:
        """Raise ApplyError (nothing changed) when the new address or TLS pair cannot be used."""
        context = self._tls_context(new)
        if Address.of(old) != Address.of(new):
            await self._move(new, context)
        elif context is not None:
            await self._rotate(context)
        config = self.server.config
        config.limit_concurrency = new.limits.max_connections  # read by each new connection
        self._guard().update(new.limits)
        config.timeout_graceful_shutdown = math.ceil(new.limits.shutdown_grace_s)

    def _tls_context(self, new: Server) -> ssl.SSLContext | None:
        if new.tls.cert is None:
            return None
        config = self.server.config
        try:
            return create_ssl_context(
                certfile=new.tls.cert,
                keyfile=new.tls.key,
                password=None,
                ssl_version=config.ssl_version,
                cert_reqs=config.ssl_cert_reqs,
                ca_certs=config.ssl_ca_certs,
                ciphers=config.ssl_ciphers,
            )
        except (ssl.SSLError, OSError) as exc:
            raise ApplyError(f"server.tls: cannot use {new.tls.cert} / {new.tls.key}: {exc}") from exc

    async def _rotate(self, context: ssl.SSLContext) -> None:
        """Same address, new certificate: each handshake from now on takes the new context (one in progress
        keeps the one it started with); open connections keep the session they have."""
        self._guard().tls = context

    async def _move(self, new: Server, context: ssl.SSLContext | None) -> None:
        """Listen on the new address first, then stop accepting on the old one. On the same port the old
        socket must close first: the gap is one call. The old socket's connections are closed once their
        current response is done: a client let in under the old address and keys must not go on sending
        requests that the new app (another address, other keys) would answer."""
        old_servers = list(self.server.servers)
        old_addresses = [_address(s) for s in old_servers if s.sockets]
        same_port = any(port == new.port for _, port in old_addresses)
        if same_port:
            _stop_accepting(old_servers)
        try:
            sock = open_socket(new.host, new.port)
        except ApplyError:
            if same_port:  # put the old listener back as it was
                self.server.servers = [await self._serve(open_socket(*a)) for a in old_addresses]
            raise
        made_here: weakref.WeakSet[asyncio.Protocol] = weakref.WeakSet()
        self.server.servers = [await self._serve(sock, made_here)]
        self._guard().tls = context
        _stop_accepting(old_servers)
        # Once the old socket accepts no more: every connection the new one did not make is an old one.
        for connection in list(self.server.server_state.connections):
            if connection not in made_here:
                connection.shutdown()  # uvicorn's own: closes now when idle, else after the response

    def _guard(self) -> ConnectionGuard:
        protocol = self.server.config.http_protocol_class
        assert isinstance(protocol, type)
        assert issubclass(protocol, GuardedH11Protocol)
        return protocol.guard

    async def _serve(
        self, sock: socket.socket, made_here: weakref.WeakSet[asyncio.Protocol] | None = None
    ) -> asyncio.Server:
        """Plain sockets: the protocol starts TLS itself, once it has admitted the connection (connections.py)."""
        server, config = self.server, self.server.config

        def protocol(loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            made: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=server.server_state, app_state=server.lifespan.state, _loop=loop
            )
            if made_here is not None:
                made_here.add(made)
            return made

        return await asyncio.get_running_loop().create_server(protocol, sock=sock, backlog=BACKLOG)


class ListenError(Exception):
    """A socket could not be opened; the message names the address and the reason."""


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, opened here rather than in uvicorn so a taken port is one clear line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=BACKLOG)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else "the address cannot be used"
        raise ListenError(f"cannot listen on {host}:{port}: {reason}") from None


def open_socket(host: str, port: int) -> socket.socket:
    try:
        return listen(host, port)
    except ListenError as exc:
        raise ApplyError(f"server.port: {exc}") from None


def _address(server: asyncio.Server) -> tuple[str, int]:
    host, port = server.sockets[0].getsockname()[:2]
    return str(host), int(port)


def _stop_accepting(servers: list[asyncio.Server]) -> None:
    for server in servers:
        server.close()  # closes the listening socket only; open connections carry on
