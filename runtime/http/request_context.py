"""The outermost middleware: request id, access log line, request counter, and the last-resort 500."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..ops.logs import REQUEST_ID
from ..ops.metrics import Metrics
from .errors import error_response

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")  # never "-", the logs' "outside a request"
UNMATCHED_ROUTE = "unmatched"

access_log = logging.getLogger("cortex.access")
error_log = logging.getLogger("cortex.errors")


def request_id_from(headers: Headers) -> str:
    """The client's id when it is short and plain (it lands in logs), else a fresh one."""
    given = headers.get(REQUEST_ID_HEADER, "")
    return given if _SANE_ID.match(given) else uuid.uuid4().hex


def logged_path(scope: Scope) -> str:
    """The path as sent (still %-encoded, so a `%0A` cannot forge a log line); never the query string."""
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) else repr(scope["path"])[1:-1]


def route_label(scope: Scope) -> str:
    """The route's path template, never the raw path: metric labels must stay few."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED_ROUTE


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope))
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_log.exception("unhandled error in %s %s", scope["method"], logged_path(scope))
            if status:
                raise  # the response has begun: only closing the connection is left
            status = 500
            await error_response(500, f"internal server error (request id {request_id})")(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started)
            REQUEST_ID.reset(token)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        # status 0: the client left before any response began
        self.metrics.inc("cortex_requests_total", route=route_label(scope), status=str(status))
        client = scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "-"
        access_log.info(
            '%s "%s %s HTTP/%s" %d %.1fms',
            peer,
            scope["method"],
            logged_path(scope),
            scope.get("http_version", "1.1"),
            status,
            seconds * 1000,
        )
