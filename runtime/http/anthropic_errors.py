"""Errors on Anthropic's routes (/v1/messages...) in Anthropic's shape, whichever layer refused the request (the
key check, the body limits, the content type, the endpoint): {"type": "error", "error": {"type", "message"}}."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ANTHROPIC_PATHS = ("/v1/messages",)
# Anthropic's error types by status (its API reference, "Errors")
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 408: "timeout_error", 413: "request_too_large", 415: "invalid_request_error",
               429: "rate_limit_error", 503: "overloaded_error"}  # fmt: skip


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


class AnthropicErrorShape:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(ANTHROPIC_PATHS):
            await self.app(scope, receive, send)
            return
        held: Message | None = None

        async def reshaped(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start" and message["status"] >= 400 and _is_json(message):
                held = message  # an error body is small and sent whole: rewritten with its length
                return
            if held is not None and message["type"] == "http.response.body" and message.get("more_body"):
                await send(held)  # an error body in parts is none of ours: passed on as it is
                held = None
            if held is not None and message["type"] == "http.response.body":
                body = _anthropic(held["status"], message.get("body", b""))
                headers = [(name, value) for name, value in held["headers"] if name.lower() != b"content-length"]
                await send({**held, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                held = None
                return
            await send(message)

        await self.app(scope, receive, reshaped)


def _is_json(message: Message) -> bool:
    return any(name.lower() == b"content-type" and value.startswith(b"application/json") for name, value in
               message.get("headers", []))  # fmt: skip


def _anthropic(status: int, body: bytes) -> bytes:
    try:
        document = json.loads(body)
    except ValueError:
        return body
    if not isinstance(document, dict) or document.get("type") == "error":  # not an error body, or Anthropic's
        return body
    error = document.get("error")
    if not isinstance(error, dict):
        return body
    return json.dumps(error_body(status, str(error.get("message", "")))).encode()
