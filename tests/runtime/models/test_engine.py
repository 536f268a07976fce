"""Engine: one llama.cpp model on its own thread; stops between tokens when cancelled or out of time."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.cortexfile.schema import Model
from menlo_cortex.cortexfile.schema.models import LlamaCppEngine
from menlo_cortex.runtime.models.batching.offload import NOTHING, OnGpu
from menlo_cortex.runtime.models.engine import (
    Engine,
    ModelLoadError,
    check_gguf,
    llama_arguments,
    plan_engine,
)
from menlo_cortex.runtime.models.generation import Generation

from tests.runtime.harness import model_entry

PROMPT = "Once upon a time"


def model(path: Path, **settings: Any) -> Model:
    return Model.model_validate(model_entry(path, **settings))


def start_completion(max_tokens: int) -> Any:
    def start(llama: Any) -> Any:
        return llama.create_completion(PROMPT, max_tokens=max_tokens, temperature=0, stream=True)

    return start


def make_engine(entry: Model, path: Path, settings: LlamaCppEngine | None = None) -> Engine:
    settings = settings or LlamaCppEngine()
    return Engine(entry, path, settings, plan_engine(entry, path, settings, None))


def engine_threads(model_id: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(f"llama-{model_id}")]


def test_llama_arguments_follow_the_cortexfile(tmp_path: Path) -> None:
    settings = LlamaCppEngine(batch_size=64, flash_attention=True, use_mmap=False, use_mlock=True)
    arguments = llama_arguments(model(tmp_path, threads=3, embeddings=True), settings, OnGpu(-1))  # the plan's
    assert arguments["n_threads"] == 3
    assert arguments["n_gpu_layers"] == -1
    assert arguments["op_offload"] is True  # llama.cpp's default
    assert arguments["n_ctx"] == 512
    assert arguments["n_batch"] == 64
    assert (arguments["flash_attn"], arguments["use_mmap"], arguments["use_mlock"]) == (True, False, True)
    assert arguments["embedding"] is True
    assert arguments["pooling_type"] == 1
    assert arguments["chat_format"] == "gemma"


def test_unset_threads_mean_every_core_this_process_may_use(tmp_path: Path) -> None:
    arguments = llama_arguments(model(tmp_path), LlamaCppEngine(), NOTHING)
    assert arguments["n_threads"] == arguments["n_threads_batch"] == len(os.sched_getaffinity(0))


def test_check_gguf_names_model_and_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelLoadError, match=r"model `gemma`: .*notes.txt is not a GGUF file"):
        check_gguf(model(text), text)
    with pytest.raises(ModelLoadError, match=r"model `gemma`: cannot read .*missing.gguf"):
        check_gguf(model(text), tmp_path / "missing.gguf")


def test_generation_streams_counts_and_stops_when_cancelled(test_model_path: Path) -> None:
    async def main() -> Generation:
        engine = make_engine(model(test_model_path), test_model_path)
        await engine.load()
        generation = Generation(deadline=time.monotonic() + 60)
        try:
            async for _chunk in engine.stream(start_completion(200), generation):
                if generation.stats.completion_tokens >= 3:
                    generation.cancel.set()
        finally:
            await engine.close()
        return generation

    generation = asyncio.run(main())
    assert 3 <= generation.stats.completion_tokens <= 5  # stopped between tokens, not at 200
    assert generation.stats.prompt_tokens > 0
    assert generation.stats.first_token_s is not None
    assert len(generation.stats.gaps_s) == generation.stats.completion_tokens - 1
    assert _threads_end("gemma"), "the engine thread outlived close()"


def test_generation_past_its_deadline_stops_and_says_so(test_model_path: Path) -> None:
    async def main() -> tuple[Generation, int]:
        engine = make_engine(model(test_model_path), test_model_path)
        await engine.load()
        generation = Generation(deadline=time.monotonic() + 0.3)
        try:
            chunks = [chunk async for chunk in engine.stream(start_completion(400), generation)]
        finally:
            await engine.close()
        return generation, len(chunks)

    generation, count = asyncio.run(main())
    assert generation.timed_out
    assert 0 < count < 400


def _threads_end(model_id: str) -> bool:
    deadline = time.monotonic() + 5
    while engine_threads(model_id):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_llama_cpp_warnings_go_to_logging(test_model_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        engine = make_engine(model(test_model_path), test_model_path)
        await engine.load()
        await engine.close()

    with caplog.at_level(logging.WARNING, logger="cortex.llama"):
        asyncio.run(main())
    # This GGUF makes llama.cpp warn about a token type; it must reach logging, not a silenced stderr.
    assert any(record.name == "cortex.llama" for record in caplog.records)
