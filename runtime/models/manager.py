"""The models of a Cortexfile: which are resident, loading them, admitting requests to them, and
changing them while serving (the model half of a hot reload).

Everything here runs on the event loop; the blocking llama.cpp work happens on each engine's
own threads. Per model: as many generations at once as it has slots (`engines.llama_cpp.parallel`),
at most `queue_size` more waiting, the rest 429. Across models: a count and an optional memory budget
(model file plus KV cache), least recently used idle model unloaded first.

A reload (`apply`) changes the models in place:
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
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from menlo_cortex.cortexfile.schema import Cortexfile, Model
from menlo_cortex.cortexfile.schema.models import LoadPolicy

from ..ops.metrics import Metrics
from ..reload.plan import ModelChanges
from .batching.plan import AUTO_MAX, SlotPlan
from .engine import Engine, LlamaRefused, ModelLoadError, plan_engine
from .errors import ModelFailed, ModelsBusy, QueueFull, Refused, Superseded, UnknownModel
from .slot import Slot, describe, overview_of, placement, retried

log = logging.getLogger("cortex.models")
SLEEP_CHECK_MIN_S, SLEEP_CHECK_MAX_S = 0.5, 30.0


@runtime_checkable
class Stoppable(Protocol):
    """A locator whose downloads can be ended from another thread (models.model_store.ModelStore)."""

    def stop(self) -> None: ...


class ModelManager:
    """Owns every model's engine; routes ask it for an engine through `use()`."""

    def __init__(self, config: Cortexfile, *, metrics: Metrics, locate: Callable[[Model], Path]) -> None:
        self.config, self.metrics, self._locate = config, metrics, locate
        self.limits = config.server.limits
        self._slots = {model.id: Slot(model) for model in config.models}
        self._residency = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._retiring: list[Slot] = []  # replaced or removed, unloaded once their requests are done
        self._drained = asyncio.Event()  # a retiring model finished its last request
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False  # a load llama.cpp refused is not tried again
        for model_id in self._slots:
            metrics.set("cortex_model_loaded", 0, model=model_id)
            metrics.set("cortex_queue_depth", 0, model=model_id)

    async def start(self) -> None:
        """Return at once; the `load: start` models load one after another in the background, and idle models
        are put to sleep (idle_unload_s) from now on."""
        self._background = asyncio.create_task(self._load_start_models(), name="cortex-load-start-models")
        self._spawn(self._put_idle_models_to_sleep(), "cortex-idle-unload")

    async def close(self) -> None:
        self._closing = True
        if isinstance(self._locate, Stoppable):
            self._locate.stop()  # a download in progress ends now instead of holding up the shutdown
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
        for slot in [*self._slots.values(), *self._retiring]:
            if slot.loading is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await slot.loading
            await self._unload(slot)

    def ready(self) -> bool:
        return all(slot.loaded_once for slot in self._slots.values() if slot.model.load is LoadPolicy.start)

    def status(self) -> list[dict[str, object]]:
        """Each model's state, last error and layers on the GPU (None until planned)."""
        return [{"id": slot.model.id, "state": slot.state, "error": slot.error, "gpu_layers": slot.gpu_layers}
                for slot in self._slots.values()]  # fmt: skip

    def overview(self) -> list[dict[str, object]]:
        """Each model's state, last error, planned memory (model file and KV cache) and slots: busy, queued."""
        return [overview_of(slot) for slot in self._slots.values()]

    def model_ids(self) -> list[str]:
        return list(self._slots)

    def states(self) -> dict[str, str]:
        return {model_id: slot.state for model_id, slot in self._slots.items()}

    def models(self) -> list[Model]:
        return [slot.model for slot in self._slots.values()]

    def model(self, model_id: str) -> Model:
        return self._slot(model_id).model

    def queue_depth(self, model_id: str) -> int:
        return self._slot(model_id).pending

    @contextlib.asynccontextmanager
    async def use(self, model_id: str) -> AsyncIterator[Engine]:
        """Admit a request to a model (429 when its queue is full), load it if needed, yield its engine."""
        slot = self._slot(model_id)
        self._admit(slot)
        try:
            engine = await self._ensure_loaded(slot)
            slot.last_used = time.monotonic()
            yield engine
        finally:
            slot.pending -= 1
            slot.last_used = time.monotonic()
            self.metrics.set("cortex_queue_depth", slot.pending, model=model_id)
            if slot in self._retiring and slot.pending == 0:
                self._drained.set()
                self._spawn(self._unload_retired(slot), f"cortex-unload-{model_id}")

    def _slot(self, model_id: str) -> Slot:
        slot = self._slots.get(model_id)
        if slot is None:
            known = ", ".join(self._slots) or "none"
            raise UnknownModel(f"The model `{model_id}` does not exist. Models served here: {known}.")
        return slot

    def _admit(self, slot: Slot) -> None:
        running = slot.parallel or self._configured_parallel()
        if slot.pending >= running + self.limits.queue_size:
            raise QueueFull(
                f"Model `{slot.model.id}` is busy: {slot.pending} requests are running or waiting "
                f"({running} at once, queue_size {self.limits.queue_size}). Retry later."
            )
        slot.pending += 1
        self.metrics.set("cortex_queue_depth", slot.pending, model=slot.model.id)

    def _configured_parallel(self) -> int:
        """Slots before the model's plan is known: the setting, or auto's most."""
        parallel = self.config.engines.llama_cpp.parallel
        return AUTO_MAX if parallel == "auto" else parallel

    async def _ensure_loaded(self, slot: Slot) -> Engine:
        if slot.engine is not None and not slot.engine.healthy:
            await self._drop_dead(slot)
        if slot.engine is not None and slot.state == "ready":
            return slot.engine
        if slot.loading is None:
            slot.loading = asyncio.create_task(self._load(slot), name=f"cortex-load-{slot.model.id}")
        # Shielded: a request that goes away must not abort a load that others may be waiting for.
        return await asyncio.shield(slot.loading)

    async def _drop_dead(self, slot: Slot) -> None:
        """An engine whose scheduler died fails every request: unload it, so that this request loads it anew."""
        async with self._residency:
            if slot.engine is not None and not slot.engine.healthy:
                log.error(
                    "model `%s`: its batch scheduler stopped (see the log above); loading it again", slot.model.id
                )
                await self._unload(slot)

    async def _load_start_models(self) -> None:
        for slot in self._slots.values():
            if slot.model.load is LoadPolicy.start and slot.engine is None:
                with contextlib.suppress(Refused):
                    await self._ensure_loaded(slot)

    async def _load(self, slot: Slot) -> Engine:
        previous = slot.state, slot.error
        try:
            path = await self._find_file(slot)
            async with self._residency:
                return await self._load_locked(slot, path, previous)
        finally:
            slot.loading = None

    async def _find_file(self, slot: Slot) -> Path:
        """The model's file. A download happens here, outside the residency lock: a model that takes an
        hour to arrive holds up no other model's load, and close() stops it (see `Stoppable`)."""
        self._skip_if_superseded(slot)
        slot.state, slot.error = "loading", None
        try:
            return await asyncio.to_thread(self._locate, slot.model)
        except Exception as exc:  # each message names model and file or URL
            raise self._failed(slot, exc) from None

    async def _load_locked(self, slot: Slot, path: Path, previous: tuple[str, str | None]) -> Engine:
        if slot.engine is not None:
            return slot.engine
        self._skip_if_superseded(slot)  # a newer config changed it again while it waited: skipped, not waited for
        model = slot.model
        slot.state, slot.error = "loading", None
        try:
            engine, plan, started = await self._load_placed(slot, path)
        except Refused:  # nothing was wrong with the model itself (e.g. every resident model busy)
            slot.state, slot.error = previous
            raise
        except Exception as exc:  # llama.cpp raises many kinds; each message names model and file
            raise self._failed(slot, exc) from None
        seconds = time.monotonic() - started
        log.info(
            "model `%s` loaded from %s in %.2f s: %d slot(s) of %d tokens, about %.0f MiB of memory with its KV "
            "cache%s",
            model.id,
            path,
            seconds,
            slot.parallel,
            plan.context,
            plan.total_mb,
            placement(plan),
        )
        self.metrics.observe("cortex_model_load_seconds", seconds, model=model.id)
        self.metrics.set("cortex_model_loaded", 1, model=model.id)
        slot.engine, slot.state, slot.loaded_once = engine, "ready", True
        return engine

    def _failed(self, slot: Slot, exc: Exception) -> ModelFailed:
        slot.state, slot.error, slot.gpu_layers, slot.gpu_bytes = "failed", describe(slot.model, exc), None, 0
        log.error("%s", slot.error)
        return ModelFailed(slot.error)

    def _skip_if_superseded(self, slot: Slot) -> None:
        if self._superseded(slot):
            message = f"model `{slot.model.id}` changed again before it loaded: that version is skipped"
            log.info("%s", message)
            raise Superseded(message)

    async def _load_placed(self, slot: Slot, path: Path) -> tuple[Engine, SlotPlan, float]:
        """The model loaded as planned, and when its loading began (once planned). Where llama.cpp could not load
        what `gpu_layers: auto` put on a GPU (the plan's estimate short, or another process's memory taken since),
        it loads again with at most half that GPU memory, then with none (an integrated GPU's: at once with none):
        slower, but serving."""
        plan = await self._planned(slot, path)
        started, caps = time.monotonic(), [plan.gpu.device // 2, 0] if plan.gpu.device else [0]
        while True:
            try:
                return await self._load_engine(slot, path, plan), plan, started
            except LlamaRefused as exc:
                if not (caps and slot.model.gpu_layers == "auto" and plan.gpu.layers and not self._closing):
                    raise
                refused, gpu_cap = exc, caps.pop(0)
                log.warning("%s", retried(slot.model, exc, plan, gpu_cap))
            slot.gpu_layers, slot.gpu_bytes = None, 0  # none held now: not waited for as a copy that holds some
            self._skip_if_superseded(slot)  # replaced or removed since: the retry is for the version wanted now
            plan = await self._planned(slot, path, gpu_cap)
            if self._closing:  # while room was made for it
                raise refused

    async def _load_engine(self, slot: Slot, path: Path, plan: SlotPlan) -> Engine:
        engine = Engine(slot.model, path, self.config.engines.llama_cpp, plan)
        try:
            await engine.load()
        except BaseException:
            await engine.close()
            raise
        return engine

    async def _planned(self, slot: Slot, path: Path, gpu_cap: int | None = None) -> SlotPlan:
        """The model's plan, with room made for it. What goes for it frees GPU memory too, which `gpu_layers: auto`
        may then take (and `parallel: auto` more slots, more host memory): planned again until nothing more goes."""
        await self._let_go_of_gpu_copies(slot)
        settings, budget_mb = self.config.engines.llama_cpp, self.limits.memory_budget_mb
        while True:
            plan = await asyncio.to_thread(plan_engine, slot.model, path, settings, budget_mb, gpu_cap)
            slot.size_mb, slot.parallel = plan.total_mb, plan.parallel  # an embedding model's plan has one slot
            if not await self._make_room(slot):
                slot.gpu_layers, slot.gpu_bytes = plan.gpu_layers, plan.gpu.device
                return plan

    async def _let_go_of_gpu_copies(self, slot: Slot) -> None:
        """A replaced copy of this model that holds GPU memory goes first, once its requests are done: the new copy
        would plan around that memory and keep the few layers left for it."""
        copies = [s for s in self._retiring if s.model.id == slot.model.id and s is not slot]
        for old in [s for s in copies if s.gpu_bytes and s.engine is not None]:
            while old.pending > 0:
                self._drained.clear()
                await self._drained.wait()
            if old in self._retiring:
                self._retiring.remove(old)
                await self._unload(old)

    async def _make_room(self, slot: Slot) -> bool:
        """Unload what must go for `slot` to fit the limits (or wait for a draining copy to go); True when
        something went."""
        went = False
        while self._over_limits(slot) and self._only_retiring_busy():  # wait for a draining copy instead of 503
            self._drained.clear()
            await self._drained.wait()
            went = True
        budget = self.limits.memory_budget_mb
        if budget is not None and slot.size_mb > budget:
            raise ModelLoadError(
                f"model `{slot.model.id}` needs about {slot.size_mb:.0f} MiB with its KV cache, more than "
                f"server.limits.memory_budget_mb ({budget}); a smaller context_size or parallel takes less"
            )
        while self._over_limits(slot):
            idle = sorted((s for s in self._resident() if s.pending == 0), key=lambda s: s.last_used)
            if not idle:
                raise ModelsBusy(
                    f"Cannot load model `{slot.model.id}`: the resident-model limit is reached and "
                    "every resident model is busy. Retry later."
                )
            log.info(
                "unloading model `%s`, the least recently used, to make room for `%s`", idle[0].model.id, slot.model.id
            )
            await self._unload(idle[0])
            went = True
        return went

    def _over_limits(self, incoming: Slot) -> bool:
        resident = self._resident()
        if len(resident) + 1 > self.limits.max_resident_models:
            return True
        budget = self.limits.memory_budget_mb
        return budget is not None and sum(s.size_mb for s in resident) + incoming.size_mb > budget

    def _resident(self) -> list[Slot]:
        return [slot for slot in [*self._slots.values(), *self._retiring] if slot.engine is not None]

    async def _unload(self, slot: Slot) -> None:
        engine, slot.engine = slot.engine, None
        if engine is None:
            return
        slot.gpu_layers, slot.gpu_bytes = None, 0
        if slot.state == "ready":
            slot.state = "unloaded"
        self.metrics.set("cortex_model_loaded", 0, model=slot.model.id)
        await engine.close()
        serving = self._slots.get(slot.model.id)
        if serving is not None and serving is not slot and serving.engine is not None:
            self.metrics.set("cortex_model_loaded", 1, model=slot.model.id)  # the old copy went, the new one stays

    # Sleeping: an idle model unloaded, loaded again by its next request (as a `load: on_demand` one is).

    def idle_unload_s(self, slot: Slot) -> int | None:
        return slot.model.idle_unload_s or self.limits.idle_unload_s

    async def _put_idle_models_to_sleep(self) -> None:
        while True:
            await asyncio.sleep(self._next_sleep_check())
            now = time.monotonic()
            for slot in list(self._slots.values()):
                after = self.idle_unload_s(slot)
                if after is not None and self._idle(slot) and now - slot.last_used >= after:
                    try:
                        await self.sleep(slot.model.id, f"no request for {after} s")
                    except UnknownModel:  # a reload removed it meanwhile
                        pass
                    except Exception:  # the model stays loaded; the loop goes on for the others
                        log.exception("model `%s` could not be put to sleep", slot.model.id)

    def _next_sleep_check(self) -> float:
        """Seconds until the first resident model may fall asleep (checked again then), between 0.5 and 30."""
        now, soonest = time.monotonic(), SLEEP_CHECK_MAX_S
        for slot in self._slots.values():
            after = self.idle_unload_s(slot)
            if after is not None:  # a model not loaded yet may be by then
                soonest = min(soonest, slot.last_used + after - now if slot.engine is not None else after)
        return max(soonest, SLEEP_CHECK_MIN_S)

    def _idle(self, slot: Slot) -> bool:
        return slot.engine is not None and slot.state == "ready" and slot.pending == 0 and slot.loading is None

    async def sleep(self, model_id: str, why: str) -> bool:
        """Unload a model now if nothing runs on it (False when it is busy); its next request loads it again."""
        slot = self._slot(model_id)
        async with self._residency:
            if not self._idle(slot):
                return slot.engine is None
            await self._unload(slot)
            slot.state = "sleeping"
        log.info("model `%s` sleeps (%s); its next request loads it again", model_id, why)
        return True

    async def wake(self, model_id: str) -> None:
        """Load a model now (what its next request would do), in the queue as a request is."""
        async with self.use(model_id):
            pass

    # Changes while serving (hot reload).

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
        if len(resident) + 1 > self.limits.max_resident_models or old.gpu_bytes:
            return False  # with layers on a GPU, the new copy would plan around the old one's GPU memory
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
        with contextlib.suppress(Refused):  # the slot keeps the error; /ready shows it
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

    def _superseded(self, slot: Slot) -> bool:
        wanted = next((m for m in self.config.models if m.id == slot.model.id), None)
        return wanted != slot.model and slot not in self._slots.values()

    def _only_retiring_busy(self) -> bool:
        resident = self._resident()
        nothing_idle = all(s.pending > 0 for s in resident)
        return nothing_idle and any(s in self._retiring for s in resident)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
