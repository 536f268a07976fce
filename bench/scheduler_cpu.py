"""The batch scheduler's CPU per generated token outside llama_decode: planning each step, sampling, the text, handing
the pieces to the event loop. Measured directly, in one process, on the real engine: the scheduler's thread's CPU
(schedstat) less what it spent inside llama_decode (its thread time around each call). bench/per_token.py can only
estimate this part from outside, as the batch thread's CPU less a decode worker's, which at one stream swings by a few
hundred µs a token from round to round. Beside it, the event loop's side (reading the streams, without HTTP) and
how often each thread is switched: the loop's wake-ups per token, and the scheduler's preemptions (a loop woken while
the scheduler still held the GIL took the core, then waited for the GIL, and woke again).

    .venv/bin/python bench/scheduler_cpu.py [--model FILE] [--streams 1,4] [--tokens 256] [--rounds 3] [--json FILE]

Run it with another commit's venv (`OTHER/.venv/bin/python bench/scheduler_cpu.py`) to measure that commit's
scheduler: it reads only what both have, the engine, its scheduler's thread and its llama.cpp binding. The streams
are direct (text completions, read by the loop from the scheduler's thread), 4 slots (--slots), the machine's threads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from compare import test_model  # bench/, the script's own folder
from menlo_cortex.cortexfile.schema import Model
from menlo_cortex.cortexfile.schema.models import LlamaCppEngine
from menlo_cortex.runtime.models.backends import load_backends
from menlo_cortex.runtime.models.engine import Engine, plan_engine
from menlo_cortex.runtime.models.generation import Generation
from per_token import PROMPT, cpu_model, on_cpu_s

FIGURES = ("tokens_per_s", "outside_decode_us_per_token", "loop_us_per_token", "loop_wake_ups_per_token",
           "scheduler_preempted_per_token")  # fmt: skip
SLOTS = 4


class TimedDecode:
    """The scheduler's llama.cpp binding, with the thread time spent inside each llama_decode added up."""

    def __init__(self, lib: Any) -> None:
        self._lib, self.seconds = lib, 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lib, name)

    def llama_decode(self, *args: Any) -> Any:
        started = time.thread_time()
        try:
            return self._lib.llama_decode(*args)
        finally:
            self.seconds += time.thread_time() - started


def thread_cpu_s(native_id: int) -> float:
    return on_cpu_s(Path(f"/proc/self/task/{native_id}"))


def switches(native_id: int) -> tuple[int, int]:
    """The thread's (voluntary, involuntary) context switches: each wait it woke from, each time it was preempted."""
    found = dict(
        line.split(":", 1)
        for line in Path(f"/proc/self/task/{native_id}/status").read_text().splitlines()
        if ":" in line
    )
    return int(found["voluntary_ctxt_switches"]), int(found["nonvoluntary_ctxt_switches"])


async def one_round(engine: Engine, decode: TimedDecode, native_id: int, streams: int, tokens: int) -> dict[str, float]:
    async def complete() -> int:
        def start(llama: Any) -> Any:
            return llama.create_completion(PROMPT, max_tokens=tokens, temperature=0, stream=True)

        generation = Generation(deadline=time.monotonic() + 600)
        async for _ in engine.stream(start, generation):
            pass
        return generation.stats.completion_tokens  # every sampled token, the end's and those held back included

    loop = threading.get_native_id()
    cpu, in_decode, started = thread_cpu_s(native_id), decode.seconds, time.monotonic()
    loop_cpu, loop_switches, preempted = thread_cpu_s(loop), switches(loop)[0], switches(native_id)[1]
    generated = sum(await asyncio.gather(*(complete() for _ in range(streams))))
    wall = time.monotonic() - started
    outside = (thread_cpu_s(native_id) - cpu) - (decode.seconds - in_decode)
    return {
        "tokens": generated,
        "tokens_per_s": generated / wall,
        "outside_decode_us_per_token": 1e6 * outside / generated,
        "loop_us_per_token": 1e6 * (thread_cpu_s(loop) - loop_cpu) / generated,
        "loop_wake_ups_per_token": (switches(loop)[0] - loop_switches) / generated,
        "scheduler_preempted_per_token": (switches(native_id)[1] - preempted) / generated,
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    model = args.model or test_model()
    entry = Model.model_validate({"id": "bench", "source": str(model), "context_size": args.context,
                                  "threads": args.threads})  # fmt: skip
    settings = LlamaCppEngine(parallel=args.slots)
    engine = Engine(entry, model, settings, plan_engine(entry, model, settings, None))
    await engine.load()
    try:
        scheduler = engine._scheduler
        assert scheduler is not None
        assert scheduler._thread.native_id is not None
        decode = TimedDecode(scheduler._lib)
        scheduler._lib = decode  # type: ignore[assignment]
        await one_round(engine, decode, scheduler._thread.native_id, 1, 16)  # warm: the first steps allocate
        levels = [int(level) for level in args.streams.split(",")]
        rounds: dict[int, list[dict[str, float]]] = {level: [] for level in levels}
        for _ in range(args.rounds):
            for level in levels:
                rounds[level].append(await one_round(engine, decode, scheduler._thread.native_id, level, args.tokens))
    finally:
        await engine.close()
    return {"threads": args.threads, "slots": args.slots, "tokens": args.tokens, "results": {
        str(level): {key: round(statistics.median(run[key] for run in runs), 2) for key in FIGURES}
        | {"rounds": [round(run["outside_decode_us_per_token"], 1) for run in runs]}
        for level, runs in rounds.items()}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the test model)")
    parser.add_argument("--context", type=int, default=2048, help="tokens per slot")
    parser.add_argument("--slots", type=int, default=SLOTS, help="sequences decoded together")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--streams", default="1,4", help="concurrent streams per round, comma separated")
    parser.add_argument("--tokens", type=int, default=256, help="tokens each stream generates")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    load_backends()
    results = asyncio.run(measure(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"{cpu_model()}, {args.threads} threads, {args.slots} slots, {args.tokens} tokens")
    print(f"{'STREAMS':>7} {'TOKENS/S':>9} {'SCHEDULER µs/TOKEN OUTSIDE DECODE':>34} {'LOOP µs/TOKEN':>14} "
          f"{'LOOP WAKE-UPS/TOKEN':>20} {'SCHEDULER PREEMPTED/TOKEN':>26}  ROUNDS")  # fmt: skip
    for level, found in results["results"].items():
        print(f"{level:>7} {found['tokens_per_s']:>9.1f} {found['outside_decode_us_per_token']:>34.0f} "
              f"{found['loop_us_per_token']:>14.0f} {found['loop_wake_ups_per_token']:>20.2f} "
              f"{found['scheduler_preempted_per_token']:>26.2f}  {found['rounds']}")  # fmt: skip


if __name__ == "__main__":
    main()
