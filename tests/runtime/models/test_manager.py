"""ModelManager on the real model: load policies, LRU unload, memory budget, clear load failures."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.cortexfile.schema import Cortexfile, Model
from menlo_cortex.runtime.fetch.download import DownloadStopped
from menlo_cortex.runtime.http.errors import ApiError
from menlo_cortex.runtime.models import manager as manager_module
from menlo_cortex.runtime.models.backends import Backends
from menlo_cortex.runtime.models.batching.offload import GPU_MARGIN, NO_ROOM, OnGpu
from menlo_cortex.runtime.models.batching.plan import MIB, SlotPlan, read_sizes
from menlo_cortex.runtime.models.engine import Engine, LlamaRefused, ModelLoadError
from menlo_cortex.runtime.models.engine import plan_engine as plan_engine_of_engine
from menlo_cortex.runtime.models.errors import ModelFailed, ModelsBusy, Refused
from menlo_cortex.runtime.models.generation import Generation
from menlo_cortex.runtime.models.manager import ModelManager
from menlo_cortex.runtime.ops.metrics import standard_metrics
from menlo_cortex.runtime.reload.plan import ModelChanges

from tests.runtime.harness import locate_source, make_config, model_entry

GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def run_with(config: Cortexfile, body: Callable[[ModelManager], Awaitable[None]]) -> ModelManager:
    async def main() -> ModelManager:
        manager = ModelManager(config, metrics=standard_metrics(), locate=locate_source)
        await manager.start()
        try:
            await body(manager)
        finally:
            await manager.close()
        return manager

    return asyncio.run(main())


async def wait_ready(manager: ModelManager) -> None:
    async with asyncio.timeout(60):
        while not manager.ready():
            await asyncio.sleep(0.01)


def states(manager: ModelManager) -> dict[object, object]:
    return {entry["id"]: entry["state"] for entry in manager.status()}


def test_start_models_load_in_the_background_and_on_demand_ones_on_first_use(test_model_path: Path) -> None:
    config = make_config([model_entry(test_model_path, "a"), model_entry(test_model_path, "b", load="on_demand")])

    async def body(manager: ModelManager) -> None:
        assert not manager.ready()  # start() returned at once
        await wait_ready(manager)
        assert states(manager) == {"a": "ready", "b": "unloaded"}
        async with manager.use("b"):
            assert states(manager)["b"] == "ready"
        assert manager.metrics.value("cortex_model_loaded", model="b") == 1
        assert 'cortex_model_load_seconds_count{model="b"} 1' in manager.metrics.render()

    manager = run_with(config, body)
    assert states(manager) == {"a": "unloaded", "b": "unloaded"}  # close() unloads everything


def test_least_recently_used_idle_model_is_unloaded(test_model_path: Path) -> None:
    models = [model_entry(test_model_path, name, load="on_demand") for name in ("a", "b", "c")]
    config = make_config(models, max_resident_models=2)

    async def body(manager: ModelManager) -> None:
        for name in ("a", "b", "a", "c"):
            async with manager.use(name):
                pass
        assert states(manager) == {"a": "ready", "b": "unloaded", "c": "ready"}
        assert manager.metrics.value("cortex_model_loaded", model="b") == 0

    run_with(config, body)


def test_busy_models_are_not_unloaded(test_model_path: Path) -> None:
    models = [model_entry(test_model_path, name, load="on_demand") for name in ("a", "b")]

    async def body(manager: ModelManager) -> None:
        async with manager.use("a"):
            with pytest.raises(ModelsBusy) as raised:
                async with manager.use("b"):
                    pass
        assert "busy" in raised.value.message
        answer = ApiError.of(raised.value)  # as a client gets it
        assert (answer.status, answer.code) == (503, "models_busy")
        assert answer.headers["Retry-After"]

    run_with(make_config(models, max_resident_models=1), body)


def test_memory_budget_smaller_than_the_model_fails_clearly(test_model_path: Path) -> None:
    config = make_config([model_entry(test_model_path, "a", load="on_demand")], memory_budget_mb=10)

    async def body(manager: ModelManager) -> None:
        with pytest.raises(ModelFailed) as raised:
            async with manager.use("a"):
                pass
        assert "memory_budget_mb" in raised.value.message
        assert manager.status() == [{"id": "a", "state": "failed", "error": raised.value.message, "gpu_layers": None}]

    run_with(config, body)


@pytest.mark.parametrize(
    ("make_file", "words"),
    [
        (lambda folder: folder / "absent.gguf", "not found"),
        (lambda folder: _write(folder / "text.gguf", b"hello, not a model"), "not a GGUF file"),
        (lambda folder: _write(folder / "cut.gguf", b"GGUF" + b"\0" * 64), "failed to load"),
    ],
)
def test_a_model_that_cannot_load_is_failed_with_model_and_file_named(
    tmp_path: Path, make_file: Callable[[Path], Path], words: str
) -> None:
    path = make_file(tmp_path)
    config = make_config([model_entry(path, "broken"), model_entry(path, "later", load="on_demand")])

    async def body(manager: ModelManager) -> None:
        async with asyncio.timeout(30):
            while states(manager)["broken"] != "failed":
                await asyncio.sleep(0.01)
        error = str(manager.status()[0]["error"])
        assert words in error
        assert "broken" in error
        assert path.name in error
        assert not manager.ready()
        with pytest.raises(ModelFailed) as raised:
            async with manager.use("later"):
                pass
        assert "later" in raised.value.message
        assert (ApiError.of(raised.value).status, ApiError.of(raised.value).param) == (503, "model")

    run_with(config, body)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_chat_template_from_the_cortexfile_is_used(test_model_path: Path) -> None:
    entry: dict[str, Any] = model_entry(test_model_path, "templated", chat_template=GEMMA_TEMPLATE)
    del entry["chat_format"]

    async def body(manager: ModelManager) -> None:
        await wait_ready(manager)
        messages = [{"role": "user", "content": "Say hello."}]

        def start(llama: Any) -> Any:
            return llama.create_chat_completion(messages=messages, max_tokens=8, temperature=0, stream=True)

        async with manager.use("templated") as engine:
            chunks = [chunk async for chunk in engine.stream(start, Generation(deadline=time.monotonic() + 60))]
        assert "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks).strip()

    run_with(make_config([entry]), body)


class SlowDownload:
    """A locator whose model `slow` is still downloading until stopped; every other model is at hand."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.stopped = threading.Event()

    def __call__(self, model: Model) -> Path:
        if model.id == "slow":
            self.started.set()
            self.stopped.wait(60)
            raise DownloadStopped(f"model `{model.id}`: download stopped")
        return locate_source(model)

    def stop(self) -> None:
        self.stopped.set()


def test_a_download_holds_up_no_other_load_and_shutdown_stops_it(test_model_path: Path) -> None:
    """Before: the download ran under the residency lock, so `fast` waited for `slow` (and close() too)."""
    config = make_config(
        [model_entry(test_model_path, "slow", load="on_demand"), model_entry(test_model_path, "fast", load="on_demand")]
    )
    locator = SlowDownload()

    async def main() -> float:
        manager = ModelManager(config, metrics=standard_metrics(), locate=locator)
        await manager.start()
        waiting = asyncio.create_task(_use(manager, "slow"))
        assert await asyncio.to_thread(locator.started.wait, 30)  # `slow` is downloading now
        async with asyncio.timeout(30):
            async with manager.use("fast"):
                assert states(manager) == {"slow": "loading", "fast": "ready"}
        started = time.monotonic()
        await manager.close()
        closing = time.monotonic() - started
        with pytest.raises(Refused, match="download stopped"):
            await waiting
        return closing

    assert asyncio.run(main()) < 10
    assert locator.stopped.is_set()


class PretendGpu:
    """A GPU that tells `free` bytes free but takes at most `holds` (another process took the rest, or the plan's
    estimate was short), the only part pretended here: this machine has none. The model, its plans and its loads
    are real; the CPU build ignores the layers asked."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, *, free: int, holds: int, refusing: Callable[[], object] = list
    ) -> None:
        """`refusing`: called at each refusal, before it is raised."""
        self.holds, self.tried = holds, list[OnGpu]()
        self._real_load = Engine.load
        monkeypatch.setattr(Backends, "gpu_free", lambda _: (free,))

        async def load(engine: Any) -> None:  # a function: the class binds it to the engine
            self.tried.append(engine.plan.gpu)
            if engine.plan.gpu.total > self.holds:
                refusing()
                await asyncio.sleep(0)  # what `refusing` started runs to its first wait
                raise LlamaRefused(f"model `{engine.model.id}`: llama.cpp failed to load it: out of GPU memory")
            await self._real_load(engine)

        monkeypatch.setattr(Engine, "load", load)


def long_context(model_path: Path, context_size: int = 32768, **settings: Any) -> Cortexfile:
    """Model `a`, whose long context puts most of its GPU memory in the layers' KV cache: half that memory holds some
    layers (the output and a step's buffers, 170 and 70 MiB, stay). 16384 tokens take 529 MiB, 32768 721."""
    entry = model_entry(model_path, "a", load="on_demand", context_size=context_size, **settings)
    engines = {"llama_cpp": {"parallel": 4, "batch_size": 64}}
    return Cortexfile.model_validate({"version": 1, "engines": engines, "models": [entry]})


def load_on(model_path: Path, **settings: Any) -> dict[str, object]:
    """The model's status once loaded, or once failed."""
    config = long_context(model_path, **settings)
    seen: dict[str, object] = {}

    async def body(manager: ModelManager) -> None:
        with contextlib.suppress(ModelFailed):
            async with manager.use("a"):
                pass
        seen.update(manager.status()[0])

    run_with(config, body)
    return seen


def test_auto_loads_again_with_half_the_gpu_memory_where_the_gpu_could_not_take_the_plan(
    test_model_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    roomy = PretendGpu(monkeypatch, free=GPU_MARGIN + 10_000 * MIB, holds=10_000 * MIB)
    assert load_on(test_model_path)["gpu_layers"] == roomy.tried[0].layers  # every layer, at once
    assert len(roomy.tried) == 1
    short = PretendGpu(monkeypatch, free=GPU_MARGIN + 10_000 * MIB, holds=roomy.tried[0].total * 3 // 5)
    status = load_on(test_model_path)
    first, second = short.tried
    assert first == roomy.tried[0]
    assert 0 < second.layers < first.layers
    assert second.total <= first.total // 2
    assert (status["state"], status["gpu_layers"]) == ("ready", second.layers)
    assert f"loading it again with at most {first.total // 2 / MIB:.0f} MiB there" in caplog.text


def test_auto_loads_on_the_cpu_alone_where_the_gpu_takes_nothing(
    test_model_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cortex.models")
    full = PretendGpu(monkeypatch, free=GPU_MARGIN + 10_000 * MIB, holds=0)
    status = load_on(test_model_path)
    assert [gpu.total > 0 for gpu in full.tried] == [True, True, False]
    assert full.tried[-1] == NO_ROOM  # and no batch sent there either
    assert (status["state"], status["gpu_layers"]) == ("ready", 0)
    assert "loading it again with none there" in caplog.text
    assert "; none on the GPU, which had no room for a layer" in caplog.text  # the loaded line


def test_auto_puts_every_layer_on_an_integrated_gpu_and_without_it_where_it_refuses(
    test_model_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A Jetson's GPU, pretended (the CPU build ignores the layers asked): every layer there at first; where
    llama.cpp cannot allocate its buffers, none at once (half of nothing is nothing)."""
    caplog.set_level(logging.INFO, logger="cortex.models")
    monkeypatch.setattr(Backends, "integrated_gpu", property(lambda _: True))
    layers = read_sizes(test_model_path).shape.layers
    assert load_on(test_model_path)["gpu_layers"] == layers + 1
    assert f"MiB of it on the integrated GPU ({layers + 1} layers and its runtime)" in caplog.text  # the loaded line
    tried, real_load = list[OnGpu](), Engine.load

    async def refusing(engine: Any) -> None:
        tried.append(engine.plan.gpu)
        if engine.plan.gpu.layers:
            raise LlamaRefused(f"model `{engine.model.id}`: llama.cpp failed to load it: out of memory")
        await real_load(engine)

    monkeypatch.setattr(Engine, "load", refusing)
    status = load_on(test_model_path)
    assert [(gpu.layers, gpu.shared) for gpu in tried] == [(layers + 1, True), (0, False)]
    assert tried[-1] == NO_ROOM  # and no batch's work there either
    assert (status["state"], status["gpu_layers"]) == ("ready", 0)
    assert f"with {layers + 1} layers planned on the GPU (an integrated one): loading it again with none" in caplog.text


def test_a_number_of_gpu_layers_is_not_second_guessed(test_model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = PretendGpu(monkeypatch, free=GPU_MARGIN + 10_000 * MIB, holds=0)
    status = load_on(test_model_path, gpu_layers=-1)
    assert len(full.tried) == 1
    assert status["state"] == "failed"
    assert status["error"] == "model `a`: llama.cpp failed to load it: out of GPU memory"


def test_a_failure_that_is_not_the_gpus_is_not_tried_again(
    test_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reranker's missing head, say: loading it again with less on the GPU would fail the same, three times."""
    gpu = PretendGpu(monkeypatch, free=GPU_MARGIN + 10_000 * MIB, holds=10_000 * MIB)

    async def load(engine: Any) -> None:
        gpu.tried.append(engine.plan.gpu)
        raise ModelLoadError("model `a`: the model's classification head has no output")

    monkeypatch.setattr(Engine, "load", load)
    status = load_on(test_model_path)
    assert len(gpu.tried) == 1
    assert (status["state"], status["gpu_layers"]) == ("failed", None)


def test_a_model_replaced_while_its_gpu_refused_it_loads_as_it_is_now(
    test_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old version's retry ends (its copy had waited for itself to let go of the GPU, the residency lock held:
    no model loaded again); the new one loads."""
    manager = ModelManager(long_context(test_model_path), metrics=standard_metrics(), locate=locate_source)
    replace = functools.partial(manager.apply, long_context(test_model_path, 16384), ModelChanges(replaced=("a",)))
    gpu = PretendGpu(monkeypatch, free=GPU_MARGIN + 10_000 * MIB, holds=600 * MIB, refusing=replace)

    async def main() -> None:
        await manager.start()
        try:
            async with asyncio.timeout(60):
                with pytest.raises(Refused, match="changed again before it loaded"):
                    await _use(manager, "a")
                await _use(manager, "a")
            assert manager.status()[0]["state"] == "ready"
        finally:
            await manager.close()

    asyncio.run(main())
    assert [gpu.total // MIB for gpu in gpu.tried] == [721, 529]  # the old version once, the new one


def test_a_load_the_gpu_refused_is_not_tried_again_once_the_server_closes(
    test_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = ModelManager(long_context(test_model_path), metrics=standard_metrics(), locate=locate_source)
    closing: list[asyncio.Task[None]] = []
    gpu = PretendGpu(monkeypatch, free=GPU_MARGIN + 10_000 * MIB, holds=0,
                     refusing=lambda: closing.append(asyncio.create_task(manager.close())))  # fmt: skip

    async def main() -> None:
        await manager.start()
        with pytest.raises(ModelFailed, match="out of GPU memory"):
            await _use(manager, "a")
        await closing[0]

    asyncio.run(main())
    assert len(gpu.tried) == 1


async def _use(manager: ModelManager, model_id: str) -> None:
    async with manager.use(model_id):
        pass


def test_a_copy_on_a_gpu_is_replaced_only_once_the_old_one_let_go(
    test_model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new copy would plan `gpu_layers: auto` around the old one's GPU memory: it waits for it to drain and go,
    where a copy on the CPU alone loads beside the old one (the default limits allow two). The plans here hold
    1 MiB of GPU memory with no layer offloaded (this machine has no GPU)."""
    config = make_config([model_entry(test_model_path, "a")])
    manager = ModelManager(config, metrics=standard_metrics(), locate=locate_source)
    seen: list[list[bool]] = []  # at each plan: whether each retiring copy is still loaded
    real = plan_engine_of_engine

    def plan_engine(*args: Any) -> SlotPlan:
        seen.append([old.engine is not None for old in manager._retiring])
        return dataclasses.replace(real(*args), gpu=OnGpu(0, weights=MIB))

    monkeypatch.setattr(manager_module, "plan_engine", plan_engine)

    async def main() -> None:
        await manager.start()
        try:
            await wait_ready(manager)
            async with manager.use("a"):  # a request runs on the old copy while the new one is wanted
                manager.apply(make_config([model_entry(test_model_path, "a", context_size=256)]),
                              ModelChanges(replaced=("a",)))  # fmt: skip
                await asyncio.sleep(0.3)
                assert manager.status()[0]["state"] == "loading"  # waiting for the old copy, not beside it
            await wait_ready(manager)
            assert manager.status()[0]["gpu_layers"] == 0
        finally:
            await manager.close()

    asyncio.run(main())
    assert seen == [[], []]  # the first load, then the new copy's plan once the old one was unloaded and gone
