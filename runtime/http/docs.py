"""/openapi.json (the engine's document plus the server's own routes) and /docs, served offline."""

from __future__ import annotations

import copy
from collections.abc import Callable
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .errors import ApiError
from .health import health_openapi_paths

ASSETS = {"docs.js": "text/javascript; charset=utf-8", "docs.css": "text/css; charset=utf-8"}
# The page loads only its own assets and talks only to this server.
# frame-ancestors: no other page may frame it (clickjacking).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

# nosniff: a script or style is run only with its own type; X-Frame-Options says frame-ancestors to older browsers.
PAGE_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "x-frame-options": "DENY"}


def read_asset(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def full_document(engine_document: dict[str, Any], *, keys_required: bool, public_metrics: bool) -> dict[str, Any]:
    """The engine's document, with the server's routes added and, when keys are set, the bearer scheme."""
    document = copy.deepcopy(engine_document)
    document.setdefault("openapi", "3.1.0")
    document.setdefault("info", {"title": "Cortex", "version": "1"})
    document.setdefault("paths", {}).update(health_openapi_paths(keys_required and not public_metrics))
    for path in ("/openapi.json", "/docs"):
        document["paths"].pop(path, None)  # not API operations: keep them out of clients and fuzzers
    if keys_required:
        schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes.setdefault("bearer", {"type": "http", "scheme": "bearer"})
        document["security"] = [{"bearer": []}]
    return document


def docs_routes(
    engine_document: Callable[[], dict[str, Any]], *, keys_required: bool, public_metrics: bool
) -> list[BaseRoute]:
    document = full_document(engine_document(), keys_required=keys_required, public_metrics=public_metrics)
    page = read_asset("docs.html")
    assets = {name: read_asset(name) for name in ASSETS}

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            raise ApiError(404, "no such docs asset")
        return Response(assets[name], media_type=ASSETS[name], headers=PAGE_HEADERS)

    return [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/docs/{name}", asset, methods=["GET"]),
    ]
