"""The memory plan (runtime/models/batching/plan.py) against llama.cpp's own figures: the real engine loads the
test model at several contexts, slot counts and step sizes, and llama.cpp's log names each buffer it made.
What of those buffers becomes resident is measured by bench/fit_check.py (`cortex bench`'s peak memory)."""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.runtime.models.backends import route_llama_logs
from menlo_cortex.runtime.models.batching.plan import MIB, Step, read_shape

from tests.runtime.models.test_batching import engine_for, with_engine

BUFFER = re.compile(r"(CPU KV|compute|output) buffer size = +([\d.]+) MiB")
MODEL_BUFFER = re.compile(r"(\S+) model buffer size = +([\d.]+) MiB")
TOLERANCE = 0.02  # llama.cpp rounds to whole tensors and pads; the plan is arithmetic


@pytest.fixture
def llama_log() -> Iterator[list[str]]:
    """Every line llama.cpp logs (info included) while the test runs; the runtime's router after it."""
    import llama_cpp

    runtime_router = route_llama_logs()  # made once per process: the engine's load keeps this one
    lines: list[str] = []

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def keep(level: int, text: bytes, user_data: Any) -> None:
        lines.append(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(keep, ctypes.c_void_p(0))
    try:
        yield lines
    finally:
        llama_cpp.llama_log_set(runtime_router, ctypes.c_void_p(0))


def serving_log(lines: list[str]) -> str:
    """What llama.cpp logged of the serving context: the last one made (llama-cpp-python makes a small one first)."""
    text = "".join(lines)
    return text[text.rindex("llama_context: n_seq_max") :]


def serving_buffers(lines: list[str]) -> dict[str, float]:
    """MiB per kind of the serving context."""
    found: dict[str, float] = {"CPU KV": 0.0, "compute": 0.0, "output": 0.0}
    for kind, mib in BUFFER.findall(serving_log(lines)):
        found[kind] += float(mib)
    return found


CASES: list[tuple[int, int, int, bool | str]] = [  # context, slots, step, flash attention (the 32768 ones: attention
    # scores larger than the logits without it)
    (1024, 1, 512, False), (2048, 2, 256, False), (1024, 4, 128, False), (32768, 4, 128, False), (32768, 4, 128, True),
    (1000, 3, 128, False),  # llama.cpp pads the cells to a multiple of 256: 3072
    (32768, 4, 128, "auto"),  # the default: llama.cpp turns it on for the CPU, and the plan counts it so
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[f"ctx{c}x{p}-step{b}-fa-{f}" for c, p, b, f in CASES])
def test_the_plan_bounds_llama_cpps_buffers(
    test_model_path: Path, llama_log: list[str], case: tuple[int, int, int, bool | str]
) -> None:
    context, parallel, batch_size, flash = case
    engine = engine_for(test_model_path, parallel, context_size=context, batch_size=batch_size, flash_attention=flash)

    async def loaded(_: Any) -> None:
        return None

    with_engine(engine, loaded)
    reported = serving_buffers(llama_log)
    shape = read_shape(test_model_path)
    step = Step(parallel, batch_size, -(-context * parallel // 256) * 256, flash_attention=flash is not False)
    # What llama.cpp's graph uses: auto turns it on for the CPU.
    assert ("(FLASH_ATTN_EXT)" in serving_log(llama_log)) is (flash is not False)
    assert reported["CPU KV"] == pytest.approx(shape.kv_bytes(step) / MIB, rel=TOLERANCE)
    assert engine.plan.kv_bytes / MIB == pytest.approx(reported["CPU KV"], rel=0.002)  # cells counted, not rounded
    reserved, work = shape.reserved_work_bytes(step) / MIB, reported["compute"] + reported["output"]
    # llama.cpp's allocator may fit the scores in the logits' room: the plan is a bound, close where they add up
    assert work * (1 - TOLERANCE) <= reserved <= work * 1.3
    resident = shape.work_bytes(step) / MIB  # the part of it written
    assert resident <= reserved
    copies = engine.plan.copied.bytes - engine.plan.copied.reclaimable
    assert engine.plan.total_mb == pytest.approx(
        (test_model_path.stat().st_size + copies) / MIB + reported["CPU KV"] + resident, rel=TOLERANCE
    )


def test_the_plan_counts_the_weight_copies_of_this_cpu(test_model_path: Path, llama_log: list[str]) -> None:
    """On this machine's CPU module: AMX's copies on a Xeon that has it (214 MiB, most of it the tied output),
    repacked ones on AVX2 (13 MiB of Q4_K), none on a CPU with neither."""
    engine = engine_for(test_model_path, 1, context_size=512)

    async def loaded(_: Any) -> None:
        return None

    with_engine(engine, loaded)
    buffers = dict(MODEL_BUFFER.findall("".join(llama_log)))
    assert "CPU_Mapped" in buffers  # the file, mapped
    copied = sum(float(mib) for name, mib in buffers.items() if name != "CPU_Mapped")
    assert engine.plan.copied.bytes / MIB == pytest.approx(copied, abs=0.01)  # llama.cpp prints 2 decimals
    assert engine.plan.copied.reclaimable <= engine.plan.copied.bytes
