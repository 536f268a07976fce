"""`create_app`: the whole server built from one Cortexfile, with no module-level state.

Everything hangs off the returned app (`app.state.metrics`, `app.state.models`), so a reload
can build a new app beside the old one and swap them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from menlo_cortex.cortexfile.schema import Cortexfile, Model
from starlette.applications import Starlette

from .conversations.store import ConversationStore, Retention
from .http.auth import ApiKeys
from .http.console import console_routes
from .http.docs import docs_routes
from .http.health import ConfigStatus, health_routes
from .http.middleware import EXCEPTION_HANDLERS, middleware
from .models.manager import ModelManager
from .models.model_store import ModelStore
from .ops.activity import Activity
from .ops.metrics import standard_metrics
from .ops.sdnotify import readiness
from .ops.system import system_info
from .update.slots import Device
from .update.state import UpdateView
from .v1.offload import Offload
from .v1.openapi import openapi_document
from .v1.rerank import rerank_routes
from .v1.responses_routes import responses_routes
from .v1.routes import messages_routes, model_control_routes, v1_routes

log = logging.getLogger("cortex.responses")


def create_app(
    config: Cortexfile,
    *,
    data_dir: Path,
    models: ModelManager | None = None,
    config_status: ConfigStatus | None = None,
    engine_document: Callable[[], dict[str, Any]] = openapi_document,
    activity: Activity | None = None,
) -> Starlette:
    """`models`: a manager shared by every generation of the app (hot reload; only the first app's lifespan
    runs, and it owns the manager). `config_status`: the config generation that /health reports.
    `engine_document`: the /v1 OpenAPI document, which a reload may reuse instead of generating it again.
    `activity`: the console's recent activity, shared like `models` (the first app's lifespan samples it)."""
    models = models or ModelManager(config, metrics=standard_metrics(), locate=model_locator(config, data_dir))
    metrics = models.metrics
    activity = activity or Activity(metrics)
    keys = ApiKeys(config.server.auth)
    offload = Offload()  # one pool of grammar workers for every route of this app

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await models.start()
        sampling = asyncio.create_task(activity.run(), name="cortex-activity")
        try:
            async with readiness(models):  # systemd Type=notify: READY=1 once the models are loaded
                yield
        finally:
            sampling.cancel()
            await models.close()

    routes = [
        *health_routes(models, metrics, config_status, *_device_status()),
        *docs_routes(
            engine_document,
            keys_required=keys.configured,
            public_metrics=config.server.auth.public_metrics,
            console=config.server.console,
        ),
        *(console_routes(models.overview, activity, data_dir) if config.server.console else []),
        *model_control_routes(models),  # before v1's GET /v1/models/{id:path}, which would take their paths
        *v1_routes(models, offload),
        *messages_routes(models, offload),
        *rerank_routes(models),
        *responses_routes(models, offload, conversation_store(config, data_dir, keys)),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware(config, keys, metrics),
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.metrics = metrics
    app.state.models = models
    return app


def model_locator(config: Cortexfile, data_dir: Path, cortexfile: Path | None = None) -> Callable[[Model], Path]:
    """Find the model file, downloading a remote source into the store first (verified by sha256, or pinned in
    the lock beside `cortexfile`)."""
    return ModelStore(config, data_dir, cortexfile)


def conversation_store(config: Cortexfile, data_dir: Path, keys: ApiKeys) -> ConversationStore | None:
    """Where responses are kept, or None: by default only on a server with API keys, whose keys own them."""
    settings = config.data.conversations
    if not (keys.configured if settings.enabled is None else settings.enabled):
        return None
    if not keys.configured:
        log.warning("data.conversations.enabled without API keys: every client can read and continue every stored "
                    "response whose id it learns")  # fmt: skip
    return ConversationStore(data_dir, Retention.of(settings))


def _device_status() -> tuple[dict[str, str], UpdateView | None]:
    """What the machine runs; on an A/B device, the slot booted and the update agent's state too."""
    device = Device()
    slot = device.booted_slot()
    if slot is None:
        return system_info(), None
    return {**system_info(), "slot": slot}, UpdateView(device.state_folder)
