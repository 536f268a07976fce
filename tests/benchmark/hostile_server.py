"""A real HTTP server on a loopback socket that answers the chat API the way a broken or hostile server might;
the model a request names picks the misbehaviour."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EVIL_ID = "\x1b[31mevil\x07"


def _chunk(text: str, usage: dict[str, Any] | None = None) -> bytes:
    document: dict[str, Any] = {"choices": [{"delta": {"content": text}}]}
    if usage is not None:
        document["usage"] = usage
    return b"data: " + json.dumps(document).encode() + b"\n\n"


BEHAVIOURS: dict[str, list[bytes]] = {
    "m": [b'data: {"choices": [{"delta": {"role": "assistant"}}]}\n\n', b"data: [DONE]\n\n"],  # says nothing
    "shapes": [b"data: 1\n\n"],
    "choices-string": [b'data: {"choices": "x"}\n\n'],
    "nested": [b"data: " + b"[" * 100_000 + b"\n\n"],
    "huge-usage": [_chunk("a"), _chunk("b"), _chunk("", {"prompt_tokens": 10**400, "completion_tokens": 10**400})],
    "endless-line": [b"data: " + b"x" * (2 << 20)],
    "ignores-max-tokens": [_chunk("token")] * 400,
    "error-escape": [b'data: {"error": {"message": "bad \\u001b[2J\\u0007 thing"}}\n\n'],
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # no chunked encoding: the body ends when the connection closes

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send(200, json.dumps({"data": [{"id": "m"}, {"id": EVIL_ID}] + [{"id": f"x{i}"} for i in range(30)]}))

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        model = body["model"]
        if model == "status-500":
            return self._send(500, json.dumps({"error": {"message": "\x1b[31mboom"}}))
        if model == "drip-whole":  # a whole (not streamed) answer, a byte every 0.2 s, for ever
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            while True:
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return None
                time.sleep(0.2)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if model == "slow-tokens":
            for text in ("one", "two", "three"):
                self.wfile.write(_chunk(text))
                self.wfile.flush()
                time.sleep(0.2)
            self.wfile.write(_chunk("", {"prompt_tokens": 5, "completion_tokens": 3}) + b"data: [DONE]\n\n")
            return None
        for part in BEHAVIOURS[model]:
            self.wfile.write(part)
        return None

    def _send(self, status: int, text: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(text.encode())


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hung up on a misbehaving answer: that is the point


@contextmanager
def hostile_server() -> Iterator[str]:
    server = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
