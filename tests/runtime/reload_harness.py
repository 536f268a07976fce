"""A real ReloadService (watcher, checks, plan) over real files, with an applier that records plans."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from menlo_cortex.cortexfile.loader import Resolved, load
from menlo_cortex.runtime.ops.metrics import standard_metrics
from menlo_cortex.runtime.reload.pipeline import Reloader, ReloadService
from menlo_cortex.runtime.reload.plan import Plan

DEADLINE_S = 10.0
POLL_S = 0.01


@dataclass
class RecordingApplier:
    plans: list[Plan] = field(default_factory=list)
    applied: list[Resolved] = field(default_factory=list)

    async def apply(self, candidate: Resolved, plan: Plan) -> None:
        self.plans.append(plan)
        self.applied.append(candidate)


@dataclass
class Running:
    service: ReloadService
    applier: RecordingApplier

    @property
    def reloader(self) -> Reloader:
        return self.service.reloader

    async def until(self, condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
        """Poll `condition` until true; fail after the deadline."""
        deadline = time.monotonic() + deadline_s
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(POLL_S)

    async def until_reloads(self, count: int, deadline_s: float = DEADLINE_S) -> None:
        await self.until(lambda: self.reloader.state.reloads >= count, f"{count} reloads", deadline_s)

    async def until_watching(self) -> None:
        """The watch is up once rewriting the Cortexfile with the same bytes is seen (and changes nothing)."""
        path = self.reloader.inputs.path
        deadline, before, text = time.monotonic() + DEADLINE_S, self.service.events, path.read_bytes()
        while self.service.events == before:
            if time.monotonic() > deadline:
                raise AssertionError("the watch never started")
            path.write_bytes(text)
            await asyncio.sleep(POLL_S * 5)


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def replace_atomically(path: Path, text: str) -> None:
    """What editors and `kubectl cp`-style tools do: a temporary file renamed over the old one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


@asynccontextmanager
async def running_service(path: Path, environ: Mapping[str, str] | None = None) -> AsyncIterator[Running]:
    applier = RecordingApplier()
    resolved = load(path, environ=dict(environ or {}))
    service = ReloadService(Reloader(resolved.inputs, resolved, applier, standard_metrics()))
    task = asyncio.create_task(service.run())
    try:
        yield Running(service, applier)
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
