"""Guards that refuse a request before it reaches a route: Host header on loopback binds, body size."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ApiError, error_response

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def host_name(host_header: str) -> str:
    """`localhost:8080` -> `localhost`, `[::1]:8080` -> `::1`; lower case, no trailing dot."""
    value = host_header.strip().lower()
    if value.startswith("["):
        name = value[1:].partition("]")[0]
    else:
        name = value.rpartition(":")[0] if value.count(":") == 1 else value
    return name.rstrip(".")


class LoopbackHostMiddleware:
    """On a loopback bind, refuse Host names that are not loopback: a web page whose DNS name was
    rebound to 127.0.0.1 would otherwise reach the API through the user's browser."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and host_name(Headers(scope=scope).get("host", "")) not in LOOPBACK_NAMES:
            message = "this server is bound to a loopback address and answers only Host: localhost, 127.0.0.1 or [::1]"
            await error_response(403, message, code="host_not_allowed")(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes", code="request_too_large")


class BodyLimitMiddleware:
    """413 for bodies over `limit`: at once from Content-Length, or while reading a chunked body."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await BodyTooLarge(self.limit).response()(scope, receive, send)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLarge(self.limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge as exc:  # raised past the routes' own error handling
            if response_started:
                raise
            await exc.response()(scope, receive, send)
