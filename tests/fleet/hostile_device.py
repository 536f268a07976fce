"""A real HTTP server on loopback that answers /health and /ready as a broken or hostile device might; the first
path segment picks the misbehaviour (a fleet entry's URL is http://127.0.0.1:PORT/<behaviour>)."""

from __future__ import annotations

import contextlib
import json
import time
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.http_servers import serving

ESCAPE = "\x1b[2J\x1b]0;owned\x07"


def _json(document: Any) -> bytes:
    return json.dumps(document).encode()


ANSWERS: dict[str, dict[str, bytes]] = {
    "html": {"health": b"<html>router login</html>", "ready": b"<html></html>"},
    "escape": {
        "health": _json(
            {
                "status": "ok",
                "config": {"generation": 3, "last_reload_error": {"message": ESCAPE}},
                "system": {"runtime_version": ESCAPE * 100},
            }
        ),
        "ready": _json({"status": "ready", "models": [{"id": ESCAPE + "m", "state": "loaded", "error": None}] * 500}),
    },
    "rolled-back": {
        "health": _json(
            {
                "status": "ok",
                "system": {"version": "1.4.3", "slot": "b"},
                "update": {"state": "failed", "last_error": {"version": "1.4.4", "message": "not kept" + ESCAPE}},
            }
        ),
        "ready": _json({"status": "ready", "models": []}),
    },
    "huge": {"health": b'{"status": "ok", "pad": "' + b"x" * (2 << 20) + b'"}', "ready": b"{}"},
    "nested": {"health": b"[" * 100_000, "ready": b"{}"},
    "shapes": {"health": _json({"status": "ok", "config": [1], "system": "x"}), "ready": _json({"status": 7})},
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client stopped reading, rightly
            self._answer()

    def _answer(self) -> None:
        behaviour, _, route = self.path.strip("/").partition("/")
        if behaviour == "drip":  # the status line, a byte at a time: each read is quick, the answer never ends
            for byte in b"HTTP/1.1 200 OK\r\nX-Pad: " + b"x" * 200:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
            return
        if behaviour == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()
        if behaviour == "slow":
            for _ in range(60):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.25)
            return
        self.wfile.write(ANSWERS[behaviour][route])


def hostile_device() -> AbstractContextManager[str]:
    """The server's base URL; it stops when the block ends."""
    return serving(Handler)
