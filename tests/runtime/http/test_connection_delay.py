"""Every connection of the real server sends each write at once (TCP_NODELAY): with Nagle's algorithm on, a streamed
answer's first chunk waited for the client's delayed ACK of the headers (about 40 ms on Linux) before it left."""

from __future__ import annotations

import socket

from menlo_cortex.runtime.http.listener import listen

from .running import hello_server, running


def test_the_servers_connections_send_each_write_at_once() -> None:
    server = hello_server()
    listening = listen("127.0.0.1", 0)
    assert listening.proto == 0  # as its connections': asyncio turns Nagle off only for proto IPPROTO_TCP
    with running(server, listening), socket.create_connection(listening.getsockname()[:2], timeout=10) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        (connection,) = server.server_state.connections
        accepted = connection.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
