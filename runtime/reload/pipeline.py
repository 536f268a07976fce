"""The reload pipeline: files changed -> load and check -> plan -> apply, or keep the running config.

`Reloader.reload()` is one attempt; `ReloadService` runs the folder watcher and SIGHUP and funnels
every trigger into one worker, so reloads never overlap and the newest content always wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.hashing import config_hash
from menlo_cortex.cortexfile.loader import Inputs, Resolved

from ..ops.metrics import Metrics
from .check import file_values, load_candidate, overridden
from .plan import Kind, Plan, plan_changes
from .state import ReloadState, describe
from .watch import FolderWatcher, WatchSettings, fingerprint, referenced_files

log = logging.getLogger("cortex.reload")
STOP_TIMEOUT_S = 10.0  # watchfiles answers a stop within one step; this only bounds a stuck watch


class ApplyError(Exception):
    """The new config is valid but could not be put in place (e.g. its port is taken); nothing changed."""


class Applier(Protocol):
    async def apply(self, candidate: Resolved, plan: Plan) -> None: ...


class Status(StrEnum):
    applied = "applied"
    unchanged = "unchanged"
    failed = "failed"


@dataclass(frozen=True)
class Outcome:
    status: Status
    plan: Plan | None = None


def first_state(running: Resolved) -> ReloadState:
    ((_, digest),) = fingerprint([running.path])
    return ReloadState(1, config_hash(running.config), time.time(), file_sha256=digest)


class Reloader:
    """Holds the running config; `reload()` replaces it by the file's current content when that is valid."""

    def __init__(
        self,
        inputs: Inputs,
        running: Resolved,
        applier: Applier,
        metrics: Metrics,
        state: ReloadState | None = None,
    ) -> None:
        self.inputs, self.running, self.applier, self.metrics = inputs, running, applier, metrics
        self.state = state or first_state(running)
        self._parsed = file_values(inputs.path)
        self._seen = dict(fingerprint(self.files()))  # contents last looked at
        self._applied = dict(self._seen)  # contents the running generation was made from
        self._lock = asyncio.Lock()
        self.attempts = 0  # reloads tried: applied, refused, or found to change nothing
        self._started = 0.0
        self.state.export(metrics)

    def files(self) -> tuple[Path, ...]:
        return referenced_files(self.running.config, self.inputs.path)

    async def reload(self, force: bool = False) -> Outcome:
        async with self._lock:
            current = dict(fingerprint(self.files()))
            if not force and all(self._seen.get(path) == digest for path, digest in current.items()):
                return Outcome(Status.unchanged)
            self._seen.update(current)
            self.attempts += 1
            self._started = time.perf_counter()
            try:
                return await self._attempt(current)
            except Exception as exc:  # a bug must not end reloading for the life of the process
                # Its type only: an exception's text may quote what it read (a secret file's bytes).
                log.error(
                    "config reload failed unexpectedly: %s",
                    type(exc).__name__,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                return self._refuse(f"{self.inputs.path}: reload failed unexpectedly ({type(exc).__name__})")

    async def _attempt(self, current: dict[str, str | None]) -> Outcome:
        try:
            candidate = await asyncio.to_thread(load_candidate, self.inputs)
        except ConfigError as exc:
            return self._refuse(describe(exc))
        plan = plan_changes(self.running.config, candidate.config, self._file_kinds(current, candidate))
        if plan.empty:  # same settings, other bytes (a comment, or a refused edit undone): the bytes served are these
            self.state.file_sha256 = current.get(str(self.inputs.path.absolute()), self.state.file_sha256)
            self.state.last_error = None  # an earlier refusal is no longer what the file says
            self._note_overrides(candidate)
            log.info("config reload: no change to apply (generation %d)", self.state.generation)
            return Outcome(Status.unchanged, plan)
        try:
            await self.applier.apply(candidate, plan)
        except ApplyError as exc:
            return self._refuse(str(exc))
        self._commit(candidate, current, plan)
        self._note_overrides(candidate)  # after the swap: parsing the file again is not on the way to serving it
        return Outcome(Status.applied, plan)

    def _file_kinds(self, current: dict[str, str | None], candidate: Resolved) -> tuple[Kind, ...]:
        """Referenced files whose content changed under the same name: TLS pair -> listener, keys -> live."""
        server = candidate.config.server
        tls = {str(p.absolute()) for p in (server.tls.cert, server.tls.key) if p is not None}
        changed = {path for path, digest in current.items() if self._applied.get(path) != digest}
        changed.discard(str(self.inputs.path.absolute()))
        kinds = [Kind.listener] if changed & tls else []
        return (*kinds, Kind.live) if changed - tls else tuple(kinds)

    def _note_overrides(self, candidate: Resolved) -> None:
        parsed = file_values(self.inputs.path)
        for note in overridden(candidate, self._parsed, parsed):
            log.warning("%s", note)
        self._parsed = parsed

    def _commit(self, candidate: Resolved, current: dict[str, str | None], plan: Plan) -> None:
        self.running = candidate
        self._applied.update(current)
        for path, digest in fingerprint(self.files()):  # files the new config names for the first time
            self._seen.setdefault(path, digest)
            self._applied.setdefault(path, digest)
        self.state.applied(config_hash(candidate.config), current.get(str(self.inputs.path.absolute())))
        self.state.export(self.metrics)
        took_ms = (time.perf_counter() - self._started) * 1000
        log.info("config reload: generation %d applied in %.0f ms (%s)", self.state.generation, took_ms, _summary(plan))

    def _refuse(self, message: str) -> Outcome:
        self.state.failed(message)
        self.state.export(self.metrics)
        log.error("config reload refused; still serving generation %d:", self.state.generation)
        for line in message.splitlines():
            log.error("%s", line)
        return Outcome(Status.failed)


def _summary(plan: Plan) -> str:
    parts = [f"{kind}: {', '.join(keys)}" for kind, keys in plan.settings.items() if keys]
    models = plan.models
    for label, ids in (("added", models.added), ("removed", models.removed), ("replaced", models.replaced)):
        if ids:
            parts.append(f"models {label}: {', '.join(ids)}")
    parts += [f"{kind} files" for kind in plan.files]
    return "; ".join(parts) or "models updated"


class ReloadService:
    """Watches the files (when `server.reload.enabled`) and listens for SIGHUP; one worker reloads."""

    def __init__(self, reloader: Reloader) -> None:
        self.reloader = reloader
        self._wake = asyncio.Event()
        self._force = False
        self._watcher: FolderWatcher | None = None
        self._watching: asyncio.Task[None] | None = None
        self.events = 0  # bursts of file events seen
        self.started = asyncio.Event()  # set once SIGHUP is handled and the watch is set up

    @property
    def watcher(self) -> FolderWatcher | None:
        return self._watcher

    def request(self, force: bool = False) -> None:
        """Ask for a reload soon (safe to call many times: requests made during a reload are merged)."""
        self._force |= force
        self._wake.set()

    def _on_event(self) -> None:
        self.events += 1
        self.request()

    async def run(self) -> None:
        """Until cancelled."""
        async with self._sighup(), self._watch():
            self.started.set()
            self.request()  # anything that changed before the watch began
            while True:
                await self._wake.wait()
                self._wake.clear()
                force, self._force = self._force, False
                outcome = await self.reloader.reload(force)
                if outcome.status is Status.applied:
                    self._follow_config()

    def _follow_config(self) -> None:
        config = self.reloader.running.config.server.reload
        files, settings = self.reloader.files(), WatchSettings.of(config)
        if config.enabled and self._watcher is None:
            self._watcher = FolderWatcher(files, settings, self._on_event)
            self._watching = asyncio.create_task(self._watcher.run(), name="cortex-config-watch")
        elif config.enabled and self._watcher is not None:
            self._watcher.watch(files, settings)
        elif self._watcher is not None:
            self._watcher.close()  # its task ends within one step
            self._watcher = self._watching = None

    @contextlib.asynccontextmanager
    async def _watch(self) -> AsyncIterator[None]:
        self._follow_config()
        try:
            yield
        finally:
            watcher, task = self._watcher, self._watching
            if watcher is not None and task is not None:
                watcher.close()
                await asyncio.wait_for(task, timeout=STOP_TIMEOUT_S)

    @contextlib.asynccontextmanager
    async def _sighup(self) -> AsyncIterator[None]:
        if signal.SIGHUP in signal.pthread_sigmask(signal.SIG_BLOCK, []):
            async with self._sighup_thread():
                yield
            return
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self.request, True)
        except (RuntimeError, ValueError):  # not the main thread: no signals there
            yield
            return
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGHUP)

    @contextlib.asynccontextmanager
    async def _sighup_thread(self) -> AsyncIterator[None]:
        """SIGHUP is blocked in every thread (`blocked_sighup`): collect it on a thread of its own."""
        loop, stop, stopping = asyncio.get_running_loop(), threading.Event(), threading.Lock()

        def collect() -> None:
            # sigwait, not sigtimedwait: when the process is stopped (SIGSTOP, Ctrl-Z, a debugger or profiler)
            # past sigtimedwait's timeout, Python 3.11 returns a siginfo it never filled in, which was taken for a
            # SIGHUP (and may hold an earlier one's number).
            while True:
                signal.sigwait({signal.SIGHUP})
                with stopping:  # so the thread is alive when the wake-up below is sent to it
                    if stop.is_set():
                        return
                loop.call_soon_threadsafe(self.request, True)

        thread = threading.Thread(target=collect, name="cortex-sighup", daemon=True)
        thread.start()
        try:
            yield
        finally:
            with stopping:
                stop.set()
                if thread.is_alive() and thread.ident is not None:
                    signal.pthread_kill(thread.ident, signal.SIGHUP)  # to that thread alone, which waits for it
            await asyncio.to_thread(thread.join, STOP_TIMEOUT_S)


@contextlib.contextmanager
def blocked_sighup() -> Iterator[None]:
    """Block SIGHUP in this thread and the threads started inside, before any exists: a signal landing
    on a llama.cpp compute thread stalls its generation, so only our collector thread takes it."""
    if not hasattr(signal, "sigtimedwait"):  # macOS (which lacks it): the loop's own handler takes SIGHUP
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        yield
    finally:
        if signal.SIGHUP in signal.sigpending():  # came after the collector ended: unblocked, it would kill us
            signal.sigwait({signal.SIGHUP})
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
