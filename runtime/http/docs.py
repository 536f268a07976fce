"""/openapi.json (the engine's document plus the server's own routes) and /docs, served offline."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .console import console_openapi_paths
from .errors import ApiError
from .health import health_openapi_paths
from .pages import PAGE_HEADERS, read_asset

ASSETS = {"docs.js": "text/javascript; charset=utf-8", "docs.css": "text/css; charset=utf-8"}


def full_document(
    engine_document: dict[str, Any], *, keys_required: bool, public_metrics: bool, console: bool = False
) -> dict[str, Any]:
    """The engine's document, with the server's routes added and, when keys are set, the bearer scheme."""
    document = copy.deepcopy(engine_document)
    document.setdefault("openapi", "3.1.0")
    document.setdefault("info", {"title": "Cortex", "version": "1"})
    document.setdefault("paths", {}).update(health_openapi_paths(keys_required and not public_metrics))
    if console:
        document["paths"].update(console_openapi_paths(keys_required))
    for path in ("/openapi.json", "/docs"):
        document["paths"].pop(path, None)  # not API operations: keep them out of clients and fuzzers
    if keys_required:
        schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes.setdefault("bearer", {"type": "http", "scheme": "bearer"})
        document["security"] = [{"bearer": []}]
    return document


def docs_routes(
    engine_document: Callable[[], dict[str, Any]], *, keys_required: bool, public_metrics: bool, console: bool = False
) -> list[BaseRoute]:
    document = full_document(engine_document(), keys_required=keys_required, public_metrics=public_metrics,
                             console=console)  # fmt: skip
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
