"""/health, /ready and /metrics: answered on the event loop at once, never behind a generation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..models.backends import loaded_backends
from ..ops.metrics import Metrics
from .auth import AUTHENTICATED

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class Readiness(Protocol):
    def ready(self) -> bool: ...

    def status(self) -> list[dict[str, object]]: ...


class ConfigStatus(Protocol):
    """The config generation being served; `details`: include the last reload error's text."""

    def __call__(self, *, details: bool) -> dict[str, object]: ...


def health_routes(
    models: Readiness,
    metrics: Metrics,
    config_status: ConfigStatus | None = None,
    system: Mapping[str, str] | None = None,
    update_status: ConfigStatus | None = None,
) -> list[BaseRoute]:
    """`system`: what the machine runs (ops/system.py), for key holders. `update_status`: a device's updates."""

    async def health(request: Request) -> Response:
        body: dict[str, object] = {"status": "ok"}
        backends = loaded_backends()
        authenticated = bool(request.scope.get(AUTHENTICATED))
        if backends is not None:  # the CPU variant in use, better ones that failed their self-test; GPUs: key holders
            body["backends"] = backends.status(gpus=authenticated)
        if config_status is not None:  # a reload error names files and keys: its text only for key holders
            body["config"] = config_status(details=authenticated)
        if authenticated and system:  # a version tells an attacker which flaws to try: key holders only
            body["system"] = dict(system)
        if update_status is not None:  # the versions and the last error's text: key holders only
            body["update"] = update_status(details=authenticated)
        if authenticated:  # each model's state (ready, sleeping, ...) and layers on the GPU: for key holders
            body["models"] = [{key: entry[key] for key in ("id", "state", "gpu_layers")} for entry in models.status()]
        return JSONResponse(body)

    async def ready(request: Request) -> Response:
        is_ready = models.ready()
        body: dict[str, object] = {"status": "ready" if is_ready else "loading"}
        if request.scope.get(AUTHENTICATED):  # model ids, states and errors (paths) only for key holders
            body["models"] = models.status()
        return JSONResponse(body, status_code=200 if is_ready else 503)

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(), media_type=PROMETHEUS_TEXT)

    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]


def health_openapi_paths(metrics_need_key: bool) -> dict[str, object]:
    """OpenAPI entries of the routes above, merged into the engine's document."""
    metrics_responses: dict[str, object] = {
        "200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}
    }
    if metrics_need_key:
        metrics_responses["401"] = {"description": "No valid API key."}
    status = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}
    config = {
        "type": "object",
        "description": "The config generation served, its hash, when it was applied, and the last reload error "
        "(its message only with a valid key).",
    }
    backends = {
        "type": "object",
        "description": "llama.cpp's backends in use, the CPU variant among them, and the better CPU variants "
        "that failed their self-test at start (skipped, with the reason: a signal, a timeout, wrong results); with "
        "a valid key, `gpus`: each GPU the backends found, its memory and what was free at start, in MiB.",
    }
    system = {
        "type": "object",
        "description": "What the machine runs (only with a valid key): the Cortex runtime's version and, on a "
        "device image, the image's build.version and kind (os-release IMAGE_VERSION and IMAGE_ID) and the A/B "
        "slot booted.",
        "properties": {name: {"type": "string"} for name in ("runtime_version", "version", "image", "slot")},
    }
    update = {
        "type": "object",
        "description": "On an A/B device: the update agent's state (current, downloading, installing, rebooting, "
        "failed); with a valid key also the version installing and the last error with its version.",
    }
    model_properties = {
        "id": {"type": "string"},
        "state": {"type": "string"},
        "gpu_layers": {"type": ["integer", "null"]},
    }
    model_states = {
        "type": "array",
        "description": "Each model's state (loading, ready, unloaded, sleeping or failed) and the layers llama.cpp "
        "offloads to the GPU (null until planned): only with a valid key.",
        "items": {"type": "object", "properties": model_properties},
    }
    properties = {"status": {"type": "string"}, "config": config, "backends": backends, "system": system,
                  "update": update, "models": model_states}  # fmt: skip
    alive = {**status, "properties": properties}
    ready = {
        **status,
        "properties": {
            "status": {"type": "string", "enum": ["ready", "loading"]},
            "models": {"type": "array", "items": {"type": "object"}},
        },
    }
    return {
        "/health": {
            "get": operation("Liveness: the process answers.", {"200": json_response("Alive.", alive)}, public=True)
        },
        "/ready": {
            "get": operation(
                "Readiness: every `load: start` model is loaded (model details need a key).",
                {"200": json_response("Ready.", ready), "503": json_response("Still loading.", ready)},
                public=True,
            )
        },
        "/metrics": {
            "get": operation("Prometheus metrics (text format 0.0.4).", metrics_responses, public=not metrics_need_key)
        },
    }


def json_response(description: str, schema: Mapping[str, object]) -> dict[str, object]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def operation(summary: str, responses: dict[str, object], *, public: bool) -> dict[str, object]:
    operation: dict[str, object] = {"summary": summary, "tags": ["server"], "responses": responses}
    if public:
        operation["security"] = []
    return operation
