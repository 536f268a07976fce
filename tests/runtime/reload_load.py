"""Continuous load on a real server while its Cortexfile changes: every request's outcome is kept."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from tests.runtime.cortex_server import CortexServer

DEADLINE_S = 60.0
PROMPT = [{"role": "user", "content": "Say hi"}]


@dataclass
class Outcomes:
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, failure: str | None) -> None:
        with self.lock:
            if failure is None:
                self.ok += 1
            else:
                self.failures.append(failure)


def one_request(client: httpx.Client, model: str, stream: bool, max_tokens: int = 4) -> str | None:
    """None when the request succeeded completely (a stream up to [DONE] without an error event)."""
    body = {"model": model, "messages": PROMPT, "max_tokens": max_tokens, "stream": stream}
    try:
        with client.stream("POST", "/v1/chat/completions", json=body) as reply:
            if reply.status_code != 200:
                return f"{reply.status_code}: {reply.read().decode(errors='replace')}"
            lines = [line for line in reply.iter_lines() if line]
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if not stream:
        return None
    if lines[-1:] != ["data: [DONE]"] or any('"error"' in line for line in lines):
        return f"stream ended badly: {lines[-2:]}"
    return None


@contextmanager
def continuous_load(server: CortexServer, models: Callable[[], list[str]], workers: int = 2) -> Iterator[Outcomes]:
    """`workers` clients, each sending one small request after another (streamed every other time)."""
    outcomes, stop = Outcomes(), threading.Event()

    def work(number: int) -> None:
        with server.client(timeout=DEADLINE_S) as client:
            turn = number
            while not stop.is_set():
                choices = models()
                outcomes.add(one_request(client, choices[turn % len(choices)], stream=turn % 2 == 0))
                turn += 1

    threads = [threading.Thread(target=work, args=(n,), name=f"load-{n}") for n in range(workers)]
    for thread in threads:
        thread.start()
    try:
        yield outcomes
    finally:
        stop.set()
        for thread in threads:
            thread.join(DEADLINE_S)


def config_status(server: CortexServer, headers: dict[str, str] | None = None) -> dict[str, object]:
    with server.client(timeout=5) as client:
        status: dict[str, object] = client.get("/health", headers=headers or {}).json()["config"]
        return status


def wait_for(condition: Callable[[], bool], what: str, server: CortexServer, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{server.output()[-4000:]}")
        time.sleep(0.02)  # poll interval; the deadline bounds the wait


def model_ids(server: CortexServer, headers: dict[str, str] | None = None) -> list[str]:
    with server.client(timeout=5) as client:
        return [m["id"] for m in json.loads(client.get("/v1/models", headers=headers or {}).text)["data"]]
