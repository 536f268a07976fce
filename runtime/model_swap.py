"""A ModelManager whose models can change while it serves: the model half of a hot reload.

- added: loaded in the background, served once ready (`load: on_demand` ones are served at once);
- removed: no new requests; the in-flight ones finish, then the model is unloaded ("retired");
- replaced (file, sha256 or load parameters): when the limits hold both copies, the new one loads
  beside the old and traffic switches when it is ready; otherwise the new copy is served at once
  and its requests wait in its queue while the old drains and unloads and the new one loads.
A request keeps the engine it started on, so a stream finishes on the copy it began with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from ..cortexfile.schema import Cortexfile, Model
from ..cortexfile.schema.models import LoadPolicy
from .engine import Engine
from .errors import ApiError
from .manager import ModelManager, Slot
from .metrics import Metrics
from .reload_plan import ModelChanges

log = logging.getLogger("cortex.reload")


class ReloadableModels(ModelManager):
    def __init__(self, config: Cortexfile, *, metrics: Metrics, locate: Callable[[Model], Path]) -> None:
        super().__init__(config, metrics=metrics, locate=locate)
        self._retiring: list[Slot] = []
        self._drained = asyncio.Event()  # a retiring model finished its last request
        self._tasks: set[asyncio.Task[None]] = set()

    def apply(self, config: Cortexfile, changes: ModelChanges, locate: Callable[[Model], Path] | None = None) -> None:
        """Take the new config's models and limits (and `locate`, when the store changed); loads and unloads
        go on in the background."""
        self.config, self.limits = config, config.server.limits
        self._locate = locate or self._locate
        wanted = {model.id: model for model in config.models}
        for model_id in changes.removed:
            if model_id in self._slots:  # else still loading: it is retired instead of published
                self._retire(self._slots[model_id])
        # A new dict, never the old one changed in place: a loop may be iterating over it right now.
        self._slots = {i: s for i, s in self._slots.items() if i not in changes.removed}
        for model_id in changes.updated:
            if model_id in self._slots:
                self._slots[model_id].model = wanted[model_id]
            else:  # still loading with its old fields: load it as it is now
                self._add(wanted[model_id])
        for model_id in changes.replaced:
            old = self._slots.get(model_id)
            if old is None:
                self._add(wanted[model_id])
            else:
                self._replace(old, wanted[model_id])
        for model_id in changes.added:
            self._add(wanted[model_id])

    @contextlib.asynccontextmanager
    async def use(self, model_id: str) -> AsyncIterator[Engine]:
        slot = self._slot(model_id)
        try:
            async with super().use(model_id) as engine:
                yield engine
        finally:
            if slot in self._retiring and slot.pending == 0:
                self._drained.set()
                self._spawn(self._unload_retired(slot), f"cortex-unload-{model_id}")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().close()
        for slot in self._retiring:
            if slot.loading is not None:
                with contextlib.suppress(Exception):
                    await slot.loading
            await self._unload(slot)

    def _add(self, model: Model) -> None:
        self.metrics.set("cortex_model_loaded", 0, model=model.id)
        self.metrics.set("cortex_queue_depth", 0, model=model.id)
        slot = Slot(model)
        if model.load is LoadPolicy.on_demand:
            self._publish(slot)
        else:
            self._spawn(self._load_then_publish(slot), f"cortex-add-{model.id}")

    def _replace(self, old: Slot, model: Model) -> None:
        new = Slot(model)
        if old.engine is not None and self._room_for_both(old):
            self._spawn(self._load_then_publish(new), f"cortex-replace-{model.id}")
            return
        self._publish(new)  # its requests wait for its load, which waits for the old copy to drain
        if model.load is LoadPolicy.start:
            self._spawn(self._preload(new), f"cortex-load-{model.id}")

    def _room_for_both(self, old: Slot) -> bool:
        resident = self._resident()
        if len(resident) + 1 > self.limits.max_resident_models:
            return False
        budget = self.limits.memory_budget_mb
        return budget is None or sum(s.size_mb for s in resident) + old.size_mb <= budget  # the new one: about as big

    async def _load_then_publish(self, slot: Slot) -> None:
        try:
            await self._preload(slot)
        except asyncio.CancelledError:  # closing: close() unloads it once its load has ended
            self._retiring.append(slot)
            raise
        self._publish(slot)

    async def _preload(self, slot: Slot) -> None:
        with contextlib.suppress(ApiError):  # the slot keeps the error; /ready shows it
            await self._ensure_loaded(slot)

    def _publish(self, slot: Slot) -> None:
        """Serve `slot` under its model id from now on, in the Cortexfile's order; retire what it replaces."""
        model_id = slot.model.id
        wanted = {model.id: model for model in self.config.models}
        if wanted.get(model_id) != slot.model:  # a later reload removed or changed it while it was loading
            self._retire(slot)
            return
        previous = self._slots.get(model_id)
        slots = {**self._slots, model_id: slot}
        self._slots = {i: slots[i] for i in wanted if i in slots}
        if previous is not None and previous is not slot:
            self._retire(previous)
        if slot.engine is not None:
            self.metrics.set("cortex_model_loaded", 1, model=model_id)

    def _retire(self, slot: Slot) -> None:
        self._retiring.append(slot)
        if slot.pending == 0:
            self._spawn(self._unload_retired(slot), f"cortex-unload-{slot.model.id}")

    async def _unload_retired(self, slot: Slot) -> None:
        if slot.loading is not None:
            with contextlib.suppress(Exception):
                await slot.loading
        async with self._residency:
            if slot.pending == 0 and slot in self._retiring:
                self._retiring.remove(slot)
                await self._unload(slot)

    async def _unload(self, slot: Slot) -> None:
        await super()._unload(slot)
        serving = self._slots.get(slot.model.id)
        if serving is not None and serving is not slot and serving.engine is not None:
            self.metrics.set("cortex_model_loaded", 1, model=slot.model.id)  # the old copy went, the new one stays

    async def _load_locked(self, slot: Slot) -> Engine:
        """A background load whose model a newer config has changed again is skipped, not waited for."""
        wanted = next((m for m in self.config.models if m.id == slot.model.id), None)
        if wanted != slot.model and slot not in self._slots.values():
            message = f"model `{slot.model.id}` changed again before it loaded: that version is skipped"
            log.info("%s", message)
            raise ApiError(503, message, code="model_unavailable")
        return await super()._load_locked(slot)

    def _resident(self) -> list[Slot]:
        return [slot for slot in [*self._slots.values(), *self._retiring] if slot.engine is not None]

    async def _make_room(self, slot: Slot) -> None:
        """As the manager does, except that a busy retiring copy is waited for instead of refusing (503)."""
        while self._over_limits(slot) and self._only_retiring_busy():
            self._drained.clear()
            await self._drained.wait()
        await super()._make_room(slot)

    def _only_retiring_busy(self) -> bool:
        resident = self._resident()
        nothing_idle = all(s.pending > 0 for s in resident)
        return nothing_idle and any(s in self._retiring for s in resident)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
