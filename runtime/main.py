"""`serve`: run one Cortexfile's app under uvicorn until SIGTERM/SIGINT; return the exit code."""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import ssl
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import uvicorn
from menlo_cortex.cortexfile.data_folder import data_dir
from menlo_cortex.cortexfile.loader import Resolved
from menlo_cortex.cortexfile.schema import Cortexfile
from starlette.types import ASGIApp

from menlo_cortex.exits import Exit

from .http.connections import protocol_class
from .http.listener import ListenError, listen
from .http.server import Server
from .models.backends import BackendError, load_backends
from .ops.logs import configure_logging
from .reload.pipeline import blocked_sighup
from .wiring import hot_reload

CPU_SELF_TEST_FILE = "cpu-selftest.json"  # in the data folder: which llama.cpp CPU variants run on this machine
# The event loop and the generation threads share the GIL. At Python's default 5 ms switch interval
# the loop waits up to that long to forward each token, and the generation thread as long to get it
# back: served against direct llama-cpp-python, about 10% fewer tokens/s were measured; at 0.5 ms, none.
GIL_SWITCH_INTERVAL_S = 0.0005
log = logging.getLogger("cortex.server")


class StartupError(Exception):
    """A problem that stops the server before it serves; its message is the one line the user sees."""

    def __init__(self, message: str, exit_code: int = Exit.FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def serve(resolved: Resolved, debug: bool = False) -> int:
    config = resolved.config
    handlers = configure_logging(config.logs, debug)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        with blocked_sighup():  # before any thread exists: see reload/pipeline.py
            return _serve(resolved, debug)
    except StartupError as exc:
        print(f"cortex: error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        for handler in handlers:
            handler.close()


def _serve(resolved: Resolved, debug: bool) -> int:
    config = resolved.config
    hot = hot_reload(resolved, os.environ, debug)  # the app of each config generation, swapped on a change
    uvicorn_config = server_config(config, hot.app)
    listener = bind(config.server.host, config.server.port)
    try:
        choose_backends(config)  # after the cheap checks, before the first model loads
    except StartupError:
        listener.close()
        raise
    server = Server(uvicorn_config)
    hot.attach(server)
    scheme = "https" if config.server.tls.cert else "http"
    host = f"[{config.server.host}]" if ":" in config.server.host else config.server.host
    log.info("cortex listening on %s://%s:%d", scheme, host, listener.getsockname()[1])
    with sigterm_exits_cleanly():
        try:
            server.run(sockets=[listener])
        except SystemExit as exc:  # uvicorn exits this way when the app's startup fails
            return exc.code if isinstance(exc.code, int) else Exit.FAILURE
        finally:
            listener.close()
    return Exit.OK


def choose_backends(config: Cortexfile) -> None:
    """llama.cpp's backends, before any model loads: a CPU variant that fails its self-test is skipped
    here, with a log line, instead of killing the server at the first decode."""
    try:
        load_backends(cache=self_test_cache(config))
    except BackendError as exc:
        raise StartupError(str(exc)) from None


def self_test_cache(config: Cortexfile) -> Path:
    return data_dir(config, os.environ) / CPU_SELF_TEST_FILE


def server_config(config: Cortexfile, app: ASGIApp) -> uvicorn.Config:
    server = config.server
    protocol = protocol_class(server.limits)
    uvicorn_config = uvicorn.Config(
        app,
        log_config=None,  # our root handlers (logs.py) format every line, request id included
        access_log=False,  # RequestContextMiddleware writes the access line
        log_level=logging.getLogger().level,
        lifespan="on",
        proxy_headers=False,
        server_header=False,
        limit_concurrency=server.limits.max_connections,
        loop="asyncio",  # uvloop, when installed, has TLS of its own that connections.py does not drive
        http=protocol,
        timeout_graceful_shutdown=math.ceil(server.limits.shutdown_grace_s),
        ssl_certfile=server.tls.cert,
        ssl_keyfile=server.tls.key,
    )
    try:
        uvicorn_config.load()
    except (ssl.SSLError, OSError) as exc:
        raise StartupError(f"server.tls: cannot use {server.tls.cert} / {server.tls.key}: {exc}", Exit.CONFIG) from exc
    # TLS is started by the protocol, after it admits the connection (http/connections.py): uvicorn's sockets
    # stay plain.
    protocol.guard.tls, uvicorn_config.ssl = uvicorn_config.ssl, None
    return uvicorn_config


def bind(host: str, port: int) -> socket.socket:
    try:
        return listen(host, port)
    except ListenError as exc:
        raise StartupError(str(exc)) from None


@contextmanager
def sigterm_exits_cleanly() -> Iterator[None]:
    """uvicorn drains on SIGTERM, then re-raises the signal against the handler it found: make that one
    a no-op, so a graceful stop exits 0 instead of dying by the signal."""

    def noted(signum: int, frame: FrameType | None) -> None:
        log.debug("signal %d after shutdown", signum)

    previous = signal.signal(signal.SIGTERM, noted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
