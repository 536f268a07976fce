"""The middleware stack made from the config, and the error renderers every route shares."""

from __future__ import annotations

from menlo_cortex.cortexfile.preflight import is_loopback
from menlo_cortex.cortexfile.schema import Cortexfile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response

from ..models.errors import Refused
from ..ops.metrics import Metrics
from .anthropic_errors import AnthropicErrorShape
from .auth import ApiKeyMiddleware, ApiKeys
from .console import ASSET_PREFIX
from .errors import ApiError, error_response
from .guards import BodyLimitMiddleware, CrossSiteMiddleware, LoopbackHostMiddleware
from .request_context import REQUEST_ID_HEADER, RequestContextMiddleware

PUBLIC_PATHS = frozenset({"/health", "/ready", "/openapi.json", "/docs"})
JSON_PATHS = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/responses",
        "/v1/rerank",
    }
)
PUBLIC_PREFIXES = ("/docs/", ASSET_PREFIX)
CONSOLE_PAGE = "/"


def middleware(config: Cortexfile, keys: ApiKeys, metrics: Metrics) -> list[Middleware]:
    """Outermost first: id and logging see everything; CORS wraps auth so a browser can read a 401."""
    server = config.server
    public = PUBLIC_PATHS | ({"/metrics"} if server.auth.public_metrics else set())
    if server.console:  # the page alone: its data routes need a key
        public |= {CONSOLE_PAGE}
    stack = [Middleware(RequestContextMiddleware, metrics=metrics), Middleware(AnthropicErrorShape)]
    if is_loopback(server.host):
        stack.append(Middleware(LoopbackHostMiddleware))
    if server.cors.enabled:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(server.cors.origins),
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=[
                    "authorization",
                    "content-type",
                    "x-api-key",
                    "anthropic-version",
                    "anthropic-beta",
                    REQUEST_ID_HEADER,
                ],
                expose_headers=[REQUEST_ID_HEADER],
                max_age=600,
            )
        )
    origins = frozenset(server.cors.origins) if server.cors.enabled else frozenset()
    stack.append(
        Middleware(CrossSiteMiddleware, allowed_origins=origins, json_paths=JSON_PATHS, keys_required=keys.configured)
    )
    limits = server.limits
    stack.append(Middleware(BodyLimitMiddleware, limit=limits.max_body_bytes, timeout_s=limits.body_timeout_s))
    stack.append(
        Middleware(ApiKeyMiddleware, keys=keys, public_paths=frozenset(public), public_prefixes=PUBLIC_PREFIXES)
    )
    return stack


async def render_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def render_refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return ApiError.of(exc).response()


async def render_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 in OpenAI's error shape."""
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, headers=dict(exc.headers or {}))


EXCEPTION_HANDLERS = {ApiError: render_api_error, Refused: render_refusal, HTTPException: render_http_error}
