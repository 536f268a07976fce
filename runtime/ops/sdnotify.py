"""systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram per message to the
socket in $NOTIFY_SOCKET. Without that variable (not started by systemd as Type=notify) every call is
a no-op, so the runtime behaves the same everywhere else.

The service unit is Type=notify: READY=1 once every `load: start` model is loaded, EXTEND_TIMEOUT_USEC
while they download or load (so a first start that fetches a model is not killed by TimeoutStartSec=),
STOPPING=1 when shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

log = logging.getLogger("cortex.sdnotify")
POLL_S = 0.5
EXTEND_EVERY_S = 10.0
EXTEND_BY_S = 30.0  # each extension covers three missed beats


class Models(Protocol):
    """What the model manager tells: all `load: start` models loaded, and each model's state."""

    def ready(self) -> bool: ...

    def status(self) -> list[dict[str, object]]: ...


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one message ("READY=1", ...); False when there is no socket to send it to."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:  # readiness is advisory: never let it take the server down
        log.warning("sd_notify to %s failed: %s", address, exc)
        return False
    return True


async def announce_until_ready(models: Models, poll_s: float = POLL_S) -> None:
    """Extend the start timeout while loading, then say READY=1; returns once ready.

    A model that failed to load stops the extensions, so TimeoutStartSec= ends a start that cannot
    succeed (and an installer's rollback gets its answer) instead of waiting forever."""
    waited = EXTEND_EVERY_S  # extend at once on the first beat
    told: list[str] = []
    while not models.ready():
        failed = [str(m["id"]) for m in models.status() if m.get("state") == "failed"]
        if failed:
            if failed != told:
                notify(f"STATUS=failed to load {', '.join(failed)}")
                told = failed
        elif waited >= EXTEND_EVERY_S:
            notify(f"EXTEND_TIMEOUT_USEC={int(EXTEND_BY_S * 1_000_000)}\nSTATUS=loading models")
            waited = 0.0
        await asyncio.sleep(poll_s)
        waited += poll_s
    notify("READY=1\nSTATUS=serving")


@contextlib.asynccontextmanager
async def readiness(models: Models) -> AsyncIterator[None]:
    """For the app's lifespan: announce readiness in the background, STOPPING=1 on the way out."""
    if not os.environ.get("NOTIFY_SOCKET"):
        yield
        return
    task = asyncio.create_task(announce_until_ready(models), name="cortex-sd-notify")
    try:
        yield
    finally:
        notify("STOPPING=1")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
