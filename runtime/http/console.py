"""The device's console: `GET /` (static page and modules from the package, no CDN) and the data it reads.

The page and its assets are public; the data routes (`/console/api/...`) need a key like every API route,
and the page sends it as a Bearer header from the tab's session storage (no cookies: no CSRF to guard).
Chat, load and unload go through the API's own routes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..ops.activity import Activity
from ..ops.bench_history import recent_runs
from ..ops.database import DatabaseError
from .errors import ApiError
from .health import json_response, operation
from .pages import PAGE_HEADERS, read_asset

PAGE = "console.html"
ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "console-api.js": "text/javascript; charset=utf-8",
    "console-chart.js": "text/javascript; charset=utf-8",
    "console-markdown.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
ASSET_PREFIX = "/console/assets/"
HEADERS = {**PAGE_HEADERS, "cache-control": "no-cache", "referrer-policy": "no-referrer"}
log = logging.getLogger("cortex.console")


@functools.cache
def _assets() -> dict[str, str]:
    return {name: read_asset(name) for name in [PAGE, *ASSETS]}


def console_routes(overview: Callable[[], list[dict[str, object]]], activity: Activity, data: Path) -> list[BaseRoute]:
    assets = _assets()

    async def page(request: Request) -> Response:
        return HTMLResponse(assets[PAGE], headers=HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS:
            raise ApiError(404, "no such console asset")
        return Response(assets[name], media_type=ASSETS[name], headers=HEADERS)

    async def models(request: Request) -> Response:
        return JSONResponse({"models": overview()})

    async def activity_series(request: Request) -> Response:
        return JSONResponse(activity.series())

    async def bench(request: Request) -> Response:
        try:  # SQLite off the event loop: a slow disk must not hold up other requests
            runs = await asyncio.to_thread(recent_runs, data)
        except DatabaseError as exc:
            log.warning("the console cannot read the bench runs: %s", exc)
            raise ApiError(503, "the stored bench runs cannot be read (the server log says why)") from None
        return JSONResponse({"runs": runs})

    return [
        Route("/", page, methods=["GET"]),
        Route(ASSET_PREFIX + "{name}", asset, methods=["GET"]),
        Route("/console/api/models", models, methods=["GET"]),
        Route("/console/api/activity", activity_series, methods=["GET"]),
        Route("/console/api/bench", bench, methods=["GET"]),
    ]


def console_openapi_paths(keys_required: bool) -> dict[str, object]:
    """The console's data routes in /openapi.json (the page and its assets are not API operations)."""
    routes: dict[str, tuple[str, dict[str, object]]] = {
        "/console/api/models": ("Each model's state, memory, slots busy and requests queued.", {"models": _MODELS}),
        "/console/api/activity": ("Generated tokens/s and API requests/min over the last minutes.", _ACTIVITY),
        "/console/api/bench": ("The `cortex bench` runs stored on this device.", {"runs": _RUNS}),
    }
    paths: dict[str, object] = {}
    for path, (summary, properties) in routes.items():
        responses: dict[str, object] = {"200": json_response(summary, _object(properties))}
        if keys_required:
            responses["401"] = {"description": "No valid API key."}
        if path.endswith("/bench"):
            responses["503"] = {"description": "The stored runs cannot be read."}
        paths[path] = {"get": operation(summary, responses, public=not keys_required)}
    return paths


def _array(items: dict[str, object]) -> dict[str, object]:
    return {"type": "array", "items": items}


def _object(properties: dict[str, object]) -> dict[str, object]:
    return {"type": "object", "properties": properties, "required": list(properties)}


_NUMBER: dict[str, object] = {"type": "number"}
_INTEGER: dict[str, object] = {"type": "integer"}
_STRING: dict[str, object] = {"type": "string"}
_OPTIONAL_INTEGER: dict[str, object] = {"type": ["integer", "null"]}
_MODELS = _array(_object({"id": _STRING, "state": _STRING, "error": {"type": ["string", "null"]},
                          "memory_mb": _OPTIONAL_INTEGER, "slots": _OPTIONAL_INTEGER, "gpu_layers": _OPTIONAL_INTEGER,
                          "busy": _INTEGER, "queued": _INTEGER}))  # fmt: skip
_POINT = _object({"at": _NUMBER, "tokens_per_s": _NUMBER, "requests_per_min": _NUMBER})
_ACTIVITY: dict[str, object] = {"interval_s": _NUMBER, "kept": _INTEGER, "points": _array(_POINT)}
_RUNS = _array(_object({"id": _INTEGER, "started_at": _STRING, "label": _STRING, "model": _STRING,
                        "complete": {"type": "boolean"}, "throughput": _array(_array(_NUMBER))}))  # fmt: skip
