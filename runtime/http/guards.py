"""Guards that refuse a request before it reaches a route: Host header and peer on loopback binds,
cross-site requests from browsers, body size and body time."""

from __future__ import annotations

import asyncio
import ipaddress

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
    """On a loopback bind, refuse Host names that are not loopback (a web page whose DNS name was
    rebound to 127.0.0.1 would otherwise reach the API through the user's browser), and peers that are
    not loopback (a connection accepted before the listener moved to loopback)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not _loopback_peer(scope):
            message = "this server is bound to a loopback address and answers only local clients"
            await error_response(403, message, code="peer_not_allowed")(scope, receive, send)
            return
        if host_name(Headers(scope=scope).get("host", "")) not in LOOPBACK_NAMES:
            message = "this server is bound to a loopback address and answers only Host: localhost, 127.0.0.1 or [::1]"
            await error_response(403, message, code="host_not_allowed")(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _loopback_peer(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:  # a Unix socket: not reachable from the network
        return True
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def _is_address(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CROSS_SITE = frozenset({"cross-site", "same-site"})


class CrossSiteMiddleware:
    """A page on another site must not drive the API from a user's browser (a keyless loopback server
    is reachable from every page the user opens). A request that changes state (not GET/HEAD/OPTIONS)
    is refused when its Origin is neither the server's own nor one CORS allows, or when the browser
    says it is cross-site (Sec-Fetch-Site) without such an Origin; and a JSON route takes only
    `application/json`, since a form or text/plain POST needs no CORS preflight. Clients that are not
    browsers send neither header and are not affected."""

    def __init__(
        self, app: ASGIApp, allowed_origins: frozenset[str], json_paths: frozenset[str], keys_required: bool = False
    ) -> None:
        self.app = app
        self.allowed_origins = allowed_origins  # empty when CORS is off: only the server's own origin
        self.json_paths = json_paths
        self.keys_required = keys_required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope, Headers(scope=scope))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: Headers) -> ASGIApp | None:
        origin = headers.get("origin")
        trusted = origin is not None and self._trusted(origin, scope, headers)
        if (origin is not None and not trusted) or (headers.get("sec-fetch-site") in CROSS_SITE and not trusted):
            message = "cross-site request refused: this origin is not in server.cors.origins"
            return error_response(403, message, code="cross_site_refused")
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if scope["path"] in self.json_paths and media_type != "application/json":
            message = "the body must be JSON, sent with `Content-Type: application/json`"
            return error_response(415, message, code="unsupported_media_type")
        return None

    def _trusted(self, origin: str, scope: Scope, headers: Headers) -> bool:
        if "*" in self.allowed_origins or origin.rstrip("/") in self.allowed_origins:
            return True
        # The server's own origin, when its Host is an address or localhost: a DNS name may have been
        # rebound to this server by the very page that sends the request (Origin and Host then agree).
        # With API keys any Host will do (the console at http://device.local/): a rebinding page has no key,
        # since the console keeps it in its own origin's session storage and browsers send no ambient one.
        host = headers.get("host", "")
        own = f"{scope.get('scheme', 'http')}://{host}"
        return origin == own and (self.keys_required or _is_address(host_name(host)))


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes", code="request_too_large")


class BodyTooSlow(ApiError):
    def __init__(self, timeout_s: float) -> None:
        message = f"request body not received within {timeout_s:g} s (server.limits.body_timeout_s)"
        super().__init__(408, message, code="request_timeout", headers={"Connection": "close"})


class BodyLimitMiddleware:
    """413 for bodies over `limit` (at once from Content-Length, or while reading a chunked body), and
    408 for a body that is not complete `timeout_s` after the request's headers."""

    def __init__(self, app: ASGIApp, limit: int, timeout_s: float = 30.0) -> None:
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s

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
        body_done = False
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body, receive() only reports a disconnect: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                raise BodyTooSlow(self.timeout_s) from None
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLarge(self.limit)
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except (BodyTooLarge, BodyTooSlow) as exc:  # raised past the routes' own error handling
            if response_started:
                raise
            await exc.response()(scope, receive, send)
