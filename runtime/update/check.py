"""The boot check of a slot on trial (`cortex update check`, before boot-complete.target): the new version is kept
only when cortex.service becomes ready and every baked model answers within device.updates.ready_timeout_s. Then
its boot entry loses its try counter (blessed); otherwise the failure is recorded and the check fails, and its
unit reboots the device, whose boot loader now picks the other slot (this entry has no tries left)."""

from __future__ import annotations

import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .slots import Device
from .state import UpdateState

log = logging.getLogger("cortex.update")
POLL_S = 5.0


@dataclass(frozen=True)
class Probe:
    """One request that must succeed: a model's chat completion, embedding or ranking."""

    model: str
    path: str
    body: dict[str, object]


@dataclass(frozen=True)
class Server:
    url: str  # http(s)://127.0.0.1:PORT
    key: str | None


def probes(models: Sequence[tuple[str, str]]) -> list[Probe]:
    """(id, kind) pairs, kind one of chat, embeddings, rerank."""
    bodies: dict[str, tuple[str, dict[str, object]]] = {
        "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}),
        "embeddings": ("/v1/embeddings", {"input": "ok"}),
        "rerank": ("/v1/rerank", {"query": "ok", "documents": ["ok"]}),
    }
    return [Probe(model, bodies[kind][0], {"model": model, **bodies[kind][1]}) for model, kind in models]


def run_check(
    device: Device,
    server: Server,
    checks: Sequence[Probe],
    timeout_s: float,
    service_failed: Callable[[], bool],
    *,
    poll_s: float = POLL_S,
) -> bool:
    """True when the booted slot is kept (or was not on trial). `service_failed`: cortex.service gave up starting
    (no need to wait for the deadline)."""
    slot = device.booted_slot()
    entry = device.entries().get(slot or "")
    if slot is None or entry is None or not entry.on_trial:
        return True
    failure = _failure(server, checks, time.monotonic() + timeout_s, service_failed, poll_s)
    if failure is not None:
        record_failure(device, failure)
        return False
    device.bless(slot)
    state = UpdateState.load(device.state_folder)
    state.succeed()
    state.save(device.state_folder)
    log.info("update check: version %s answers; slot %s kept", entry.version, slot)
    return True


def record_failure(device: Device, failure: str) -> None:
    """The version on trial failed its check: recorded for /health and the agent, before its unit reboots."""
    slot = device.booted_slot() or ""
    entry = device.entries().get(slot)
    state = UpdateState.load(device.state_folder)
    state.fail(entry.version if entry else None, failure, final=True)
    state.save(device.state_folder)
    if entry is not None:
        device.mark_bad(slot)
    log.error("update check: %s; rebooting into the other slot", failure)


def _failure(
    server: Server, checks: Sequence[Probe], deadline: float, service_failed: Callable[[], bool], poll_s: float
) -> str | None:
    """None when the service is ready and every probe succeeds before `deadline`, else why not."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ssl._create_unverified_context())
    )
    while (reason := _ask(opener, server, "/ready", None, deadline)) is not None:
        if time.monotonic() >= deadline:
            return f"cortex.service was not ready in time ({reason})"
        if service_failed():
            return "cortex.service failed to start"
        time.sleep(poll_s)
    for probe in checks:  # each until it answers or the deadline passes (clients reconnecting may crowd it)
        while (reason := _ask(opener, server, probe.path, probe.body, deadline)) is not None:
            if time.monotonic() >= deadline or service_failed():
                return f"model `{probe.model}` did not answer on {probe.path} ({reason})"
            time.sleep(poll_s)
    return None


def _ask(
    opener: urllib.request.OpenerDirector, server: Server, path: str, body: dict[str, object] | None, deadline: float
) -> str | None:
    headers = {"Content-Type": "application/json"}
    if server.key:
        headers["Authorization"] = f"Bearer {server.key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, headers=headers)
    try:
        with opener.open(request, timeout=max(1.0, deadline - time.monotonic())) as response:
            response.read(1 << 20)
        return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None)
        return "not answering" if reason is None else "connection failed"
