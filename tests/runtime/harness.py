"""A real uvicorn server on a free port around the /v1 routes, for the runtime's engine-level tests.

Not the product's app (runtime/app.py's create_app): just the routes, the app's error handlers and
a lifespan that starts and closes the ModelManager, so these tests exercise the engine for real.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from menlo_cortex.cortexfile.schema import Cortexfile, Model
from menlo_cortex.runtime.http.middleware import EXCEPTION_HANDLERS
from menlo_cortex.runtime.http.server import Server
from menlo_cortex.runtime.models.manager import ModelManager
from menlo_cortex.runtime.ops.metrics import Metrics, standard_metrics
from menlo_cortex.runtime.v1.offload import Offload
from menlo_cortex.runtime.v1.responses_routes import responses_routes
from menlo_cortex.runtime.v1.routes import v1_routes
from starlette.applications import Starlette

STARTUP_S = 60.0


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll until `condition()` holds; fail naming `what` when the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


def model_entry(model_path: Path, model_id: str = "gemma", **settings: Any) -> dict[str, Any]:
    return {"id": model_id, "source": str(model_path), "chat_format": "gemma", "context_size": 512, **settings}


def make_config(models: list[dict[str, Any]], parallel: int | str = "auto", **limits: Any) -> Cortexfile:
    engines = {"llama_cpp": {"parallel": parallel}}
    return Cortexfile.model_validate({"version": 1, "server": {"limits": limits}, "engines": engines, "models": models})


def locate_source(model: Model) -> Path:
    path = Path(model.source)
    if not path.is_file():
        raise FileNotFoundError(f"model `{model.id}`: file {path} not found")
    return path


@dataclass
class Served:
    url: str
    manager: ModelManager
    metrics: Metrics


def build_app(manager: ModelManager) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await manager.start()
        yield
        await manager.close()

    routes = [*v1_routes(manager), *responses_routes(manager, Offload(), None)]  # what the document describes
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)


@contextmanager
def serve(
    config: Cortexfile, port: int, locate: Callable[[Model], Path] = locate_source, *, wait_ready: bool = True
) -> Iterator[Served]:
    """Run the routes under uvicorn in a thread until the block ends; wait for `load: start` models."""
    metrics = standard_metrics()
    manager = ModelManager(config, metrics=metrics, locate=locate)
    server = Server(uvicorn.Config(build_app(manager), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}")
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), STARTUP_S, "uvicorn to start")
        assert server.started, "uvicorn did not start"
        if wait_ready:
            wait_for(manager.ready, STARTUP_S, "the load: start models")
        yield Served(f"http://127.0.0.1:{port}", manager, metrics)
    finally:
        server.should_exit = True
        thread.join(STARTUP_S)
        assert not thread.is_alive(), "uvicorn did not stop"
