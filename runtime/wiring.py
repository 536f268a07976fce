"""Hot reload wired into the server: build new, swap, drain old.

`ReloadingApp` is the ASGI app uvicorn serves. It holds the app of the current generation and
hands each new request to it; a request already running keeps the app it started in. Every
generation's app is made by `create_app` around the SAME `ModelManager`, so live settings
(CORS, keys, limits, log level) cost one app build, and the models change only as the plan says.
The first app's lifespan owns the models (start, readiness, close) for the life of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import uvicorn
from menlo_cortex.cortexfile.data_folder import data_dir, sync_dir
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.cortexfile.schema import Cortexfile, Model
from menlo_cortex.cortexfile.secrets import SecretUnavailable
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .app import create_app, model_locator
from .http.listener import Listener
from .models.manager import ModelManager
from .ops.activity import Activity
from .ops.logs import level_of
from .ops.metrics import standard_metrics
from .reload.pipeline import ApplyError, Reloader, ReloadService, first_state
from .reload.plan import Kind, Plan
from .reload.state import ReloadState
from .sync.view import SyncView
from .v1.openapi import openapi_document

log = logging.getLogger("cortex.reload")
AppBuilder = Callable[[Cortexfile], ASGIApp]


class ReloadingApp:
    """The ASGI entry point: lifespan to the first app (plus the reload service), requests to the current one."""

    def __init__(self, first: ASGIApp) -> None:
        self.current = first
        self._first = first
        self.service: ReloadService | None = None

    def swap(self, app: ASGIApp) -> None:
        self.current = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.current(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.create_task(self.service.run(), name="cortex-reload") if self.service else None

        async def stop_reloading_first() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":  # no reload may start while the models close
                await _stop(task)
            return message

        try:
            await self._first(scope, stop_reloading_first, send)
        finally:
            await _stop(task)


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class RuntimeApplier:
    """Puts a checked plan in place: listener first (the one step that can still fail), then models and app."""

    app: ReloadingApp
    models: ModelManager
    build: AppBuilder
    config: Cortexfile
    environ: Mapping[str, str]
    debug: bool = False
    listener: Listener | None = field(default=None)
    cortexfile: Path | None = None  # whose lock pins its remote models (runtime/models/pins.py)

    async def apply(self, candidate: Resolved, plan: Plan) -> None:
        new = candidate.config
        try:
            app = self.build(new)
        except SecretUnavailable as exc:
            raise ApplyError(f"server.auth.api_keys: {exc}") from exc
        if plan.touches(Kind.listener) and self.listener is not None:
            await self.listener.apply(self.config.server, new.server)
        self.models.apply(new, plan.models, self._new_store(new))
        logging.getLogger().setLevel(level_of(new.logs, self.debug))
        self.app.swap(app)
        self.config = new
        if plan.settings.get(Kind.restart):
            log.warning("takes effect at the next start: %s", ", ".join(plan.settings[Kind.restart]))

    def _new_store(self, new: Cortexfile) -> Callable[[Model], Path] | None:
        """A new model store only when its settings changed: the store remembers the files it hashed."""
        folder = data_dir(new, self.environ)
        if new.network == self.config.network and folder == data_dir(self.config, self.environ):
            return None
        return model_locator(new, folder, self.cortexfile)


@dataclass
class HotReload:
    app: ReloadingApp
    applier: RuntimeApplier
    reloader: Reloader

    def attach(self, server: uvicorn.Server) -> None:
        """Let reloads move or re-key the listener of this (not yet started) uvicorn server."""
        self.applier.listener = Listener(server)


def hot_reload(resolved: Resolved, environ: Mapping[str, str], debug: bool = False) -> HotReload:
    """The first generation's app, ready to serve, and everything that replaces it on a change."""
    config, state = resolved.config, first_state(resolved)
    state.sync = SyncView(sync_dir(data_dir(config, environ)))
    locate = model_locator(config, data_dir(config, environ), resolved.path)
    models = ModelManager(config, metrics=standard_metrics(), locate=locate)
    build = _builder(models, state, environ, Activity(models.metrics))
    app = ReloadingApp(build(config))
    applier = RuntimeApplier(app, models, build, config, dict(environ), debug, cortexfile=resolved.path)
    inputs = dataclasses.replace(resolved.inputs, environ=dict(environ))  # every reload sees the start's env
    reloader = Reloader(inputs, resolved, applier, models.metrics, state)
    app.service = ReloadService(reloader)
    return HotReload(app, applier, reloader)


def _builder(models: ModelManager, state: ReloadState, environ: Mapping[str, str], activity: Activity) -> AppBuilder:
    document = openapi_document()  # the same for every generation, and the slowest part of an app build

    def build(config: Cortexfile) -> ASGIApp:
        folder = data_dir(config, environ)
        fresh = partial(copy_document, document)
        return create_app(config, data_dir=folder, models=models, config_status=state.report, engine_document=fresh,
                          activity=activity)  # fmt: skip

    return build


def copy_document(document: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(document)  # each app completes its own copy (keys, metrics access)
