"""Ask one device how it is, over its own API: /health (config, sync, runtime) and /ready (models), with the
fleet's key. A device may be anyone's: every answer is bounded in size and time, its shape checked, and what it
says reaches the table only as printable text, cut short."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import urllib3
from menlo_cortex.cortexfile.secrets import SecretUnavailable
from menlo_cortex.runtime.ops.text import printable

from .targets import Target

MAX_BODY = 1 << 20
TEXT = 160  # characters of any one thing a device says
MAX_MODELS = 64
MAX_COUNT = 1 << 63
BUDGET_TIMEOUTS = 5  # one device's two requests, connections and bodies included, in timeout_s


class Unanswered(Exception):
    """The device could not be asked (`unreachable`), or did not answer as a Cortex device does (`not cortex`)."""

    def __init__(self, message: str, state: str = "not cortex") -> None:
        super().__init__(message)
        self.state = state


@dataclass
class DeviceStatus:
    name: str
    url: str
    state: str = "unreachable"  # ready, loading, unreachable, too slow, key refused, no key, not valid, not cortex
    version: str | None = None  # build.version of the device's image
    slot: str | None = None  # the A/B slot it booted, on a device that updates itself
    runtime_version: str | None = None
    commit: str | None = None  # the config commit served, when the device follows a repository
    generation: int | None = None
    models: dict[str, str] = field(default_factory=dict)  # id: state
    errors: list[str] = field(default_factory=list)

    @property
    def fine(self) -> bool:
        return self.state == "ready" and not self.errors


def ask_all(targets: Sequence[Target], timeout_s: float) -> list[DeviceStatus]:
    """Every device at once, each on a thread of its own that nothing waits for past the budget: a device that
    drips its headers, one byte inside each read timeout, is listed as too slow instead of holding the table."""
    answers: list[DeviceStatus | None] = [None] * len(targets)

    def answer(index: int) -> None:
        answers[index] = ask(targets[index], timeout_s)

    threads = [threading.Thread(target=answer, args=(index,), daemon=True) for index in range(len(targets))]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + BUDGET_TIMEOUTS * timeout_s
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    return [answer or _too_slow(target, timeout_s) for answer, target in zip(answers, targets, strict=True)]


def _too_slow(target: Target, timeout_s: float) -> DeviceStatus:
    late = f"no whole answer within {BUDGET_TIMEOUTS * timeout_s:g} s (timeout_s x {BUDGET_TIMEOUTS})"
    return DeviceStatus(target.name, target.url, "too slow", errors=[late])


def ask(target: Target, timeout_s: float) -> DeviceStatus:
    status = DeviceStatus(target.name, target.url)
    if target.problem:
        status.state, status.errors = "not valid", [target.problem]
        return status
    headers = {"Accept-Encoding": "identity"}
    if target.no_key_because:
        status.errors.append(f"asked without a key: {target.no_key_because}")
    try:
        if target.api_key:
            headers["Authorization"] = f"Bearer {_header_value(target.api_key.resolve())}"
    except SecretUnavailable as exc:
        status.errors.append(f"asked without a key: {exc}")
    tls: dict[str, Any] = {"ca_certs": str(target.ca_certificate)} if target.ca_certificate else {}
    pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s), **tls)
    try:
        health = _get(pool, target.url + "/health", headers, timeout_s, (200,))
        ready = _get(pool, target.url + "/ready", headers, timeout_s, (200, 503))
        _read_health(status, health)
        _read_ready(status, ready, keyed="Authorization" in headers)
    except Unanswered as exc:
        status.state = exc.state
        status.errors.append(str(exc))
    except Exception as exc:  # one device never takes the table down; its text may quote what it sent
        status.state = "failed"
        status.errors.append(f"asking it failed ({type(exc).__name__})")
    finally:
        pool.clear()
    return status


def _header_value(key: str) -> str:
    if not key.isascii():
        raise SecretUnavailable("the API key holds characters other than ASCII: no HTTP header can carry it")
    return key


def _get(pool: urllib3.PoolManager, url: str, headers: dict[str, str], timeout_s: float, ok: tuple[int, ...]) -> Any:
    deadline = time.monotonic() + 2 * timeout_s
    try:
        response = pool.request("GET", url, headers=headers, preload_content=False, redirect=False)
        try:
            body = b""
            while chunk := response.read1(1 << 16, decode_content=False):
                body += chunk
                if len(body) > MAX_BODY or time.monotonic() > deadline:
                    raise Unanswered(f"{_path(url)}: an answer too large or too slow")
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise Unanswered(_reason(exc), "unreachable") from None
    if response.status not in ok:
        raise Unanswered(f"{_path(url)}: answered HTTP {response.status}")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise Unanswered(f"{_path(url)}: the answer is not JSON") from None
    if not isinstance(document, dict):
        raise Unanswered(f"{_path(url)}: the answer is not a JSON object")
    return document


def _read_health(status: DeviceStatus, health: dict[str, Any]) -> None:
    system = _mapping(health.get("system"))
    status.version, status.runtime_version = _text(system.get("version")), _text(system.get("runtime_version"))
    status.slot = _text(system.get("slot"))
    config = _mapping(health.get("config"))
    generation = config.get("generation")
    counted = isinstance(generation, int) and not isinstance(generation, bool) and 0 <= generation < MAX_COUNT
    status.generation = generation if counted else None
    sync = _mapping(config.get("sync"))
    status.commit = _text(sync.get("commit"))
    update = _mapping(health.get("update")).get("last_error")
    for what, error in (("config", config.get("last_reload_error")), ("sync", sync.get("last_error")),
                        ("update", update)):  # fmt: skip
        if isinstance(error, dict):
            said = _text(error.get("message")) or "(its text is for key holders)"
            version = _text(error.get("version")) if what == "update" else None
            status.errors.append(f"{what}: {said}" + (f" (version {version})" if version else ""))


def _read_ready(status: DeviceStatus, ready: dict[str, Any], *, keyed: bool) -> None:
    said = ready.get("status")
    if said not in ("ready", "loading"):
        raise Unanswered("/ready: the answer is not a Cortex device's")
    if "models" not in ready:  # a device with keys lists its models only to a key it accepts
        status.state = "key refused" if keyed else "no key"
        return
    status.state = str(said)
    for entry in _list(ready.get("models"))[:MAX_MODELS]:
        model = _mapping(entry)
        name, state = _text(model.get("id")) or "?", _text(model.get("state")) or "?"
        status.models[name] = state
        if error := _text(model.get("error")):
            status.errors.append(f"model {name}: {error}")


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: object) -> str | None:
    return printable(value, TEXT) if isinstance(value, str) and value else None


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1]


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    """The kind of failure, without the library's repr of its pool and URL."""
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, urllib3.exceptions.SSLError) or "certificate" in str(reason).lower():
        return "its TLS certificate is not trusted (ca_certificate)"
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        text = str(reason).lower()
        if "refused" in text:
            return "connection refused"
        if "name" in text or "resolution" in text:
            return "its host name does not resolve"
        return "no route to it"
    if isinstance(reason, urllib3.exceptions.TimeoutError):
        return "timed out"
    return "the connection failed"
