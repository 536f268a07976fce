"""The server's own loop: once a second while idle (uvicorn's woke ten times), the Date header still current, and a
stop, from a signal or another thread, acted on at once rather than at the next tick."""

from __future__ import annotations

import email.utils
import signal
import socket
import time

from menlo_cortex.runtime.http.listener import listen
from menlo_cortex.runtime.http.server import Server

from .running import hello_server, running


class CountingServer(Server):
    ticks = 0

    async def on_tick(self, counter: int) -> bool:
        self.ticks += 1
        return await super().on_tick(counter)


class HourlyServer(Server):
    TICK_S = 3600.0  # a stop that waited for the tick would wait an hour


def get_date(listening: socket.socket) -> float:
    with socket.create_connection(listening.getsockname()[:2], timeout=10) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        head = client.recv(4096).split(b"\r\n\r\n")[0].decode()
    (date,) = [line.split(":", 1)[1] for line in head.splitlines() if line.lower().startswith("date:")]
    return email.utils.parsedate_to_datetime(date.strip()).timestamp()


def test_an_idle_server_wakes_about_once_a_second() -> None:
    server = hello_server(CountingServer)
    with running(server, listen("127.0.0.1", 0)):
        time.sleep(3)
        assert isinstance(server, CountingServer)
        assert 2 <= server.ticks <= 5  # uvicorn's own loop: about 30


def test_the_date_header_follows_the_clock() -> None:
    server = hello_server(Server)
    listening = listen("127.0.0.1", 0)
    with running(server, listening):
        time.sleep(2.2)  # past two refreshes: a Date from the start would be two seconds behind
        assert abs(get_date(listening) - time.time()) < 1.5  # the header has whole seconds


def test_a_stop_from_another_thread_is_acted_on_at_once() -> None:
    with running(hello_server(HourlyServer), listen("127.0.0.1", 0), stop_s=20):
        pass


def test_a_signal_stops_the_server_at_once() -> None:
    server = hello_server(HourlyServer)
    with running(server, listen("127.0.0.1", 0), stop_s=20) as thread:
        server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
        thread.join(20)
        assert not thread.is_alive(), "the server is still running"
