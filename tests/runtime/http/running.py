"""A uvicorn server run in a thread for the length of a block."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.runtime.http.server import Server
from menlo_cortex.runtime.main import server_config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

START_S = 30


async def hello(_: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def hello_server(kind: type[Server] = Server) -> Server:
    """The real server's configuration (a default Cortexfile's), serving "hello" at /."""
    return kind(server_config(Cortexfile.model_validate({"version": 1}), Starlette(routes=[Route("/", hello)])))


@contextmanager
def running(server: uvicorn.Server, listening: socket.socket, stop_s: float = START_S) -> Iterator[threading.Thread]:
    """Serve on `listening` until the block ends; then ask the server to stop and wait up to `stop_s` for it."""
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_S
        while not server.started:
            assert thread.is_alive(), "the server stopped"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield thread
    finally:
        server.should_exit = True
        thread.join(stop_s)
    assert not thread.is_alive(), f"the server did not stop within {stop_s:g} s"
