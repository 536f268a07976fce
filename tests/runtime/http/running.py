"""A uvicorn server run in a thread for the length of a block."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

START_S = 30


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
