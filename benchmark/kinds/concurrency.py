"""`load`: 1, 2, 4, 8 streams at once. Aggregate and per-stream tokens/s, queueing (time to first token over
a lone stream's), 429s and errors; every request ends in exactly one of completed, rejected and failed."""

from __future__ import annotations

from typing import Any

from ..client import Completion
from ..errors import BenchError
from ..session import Bench, is_rejection
from ..stats import median, spread


def measure(bench: Bench, out: dict[str, Any]) -> None:
    levels: dict[str, Any] = out.setdefault("levels", {})
    lone_ttft = None
    for streams in bench.options.streams:
        bench.progress("load", f"{streams} concurrent stream{'s' if streams > 1 else ''}")
        bodies = [bench.workload.short(index) for index in range(streams)]
        wall_s, outcomes = bench.concurrently(bodies)
        levels[str(streams)] = level = summary(wall_s, outcomes, lone_ttft)
        lone_ttft = lone_ttft if lone_ttft is not None else level["ttft_ms"]["p50"]
        if any(isinstance(o, BenchError) and not is_rejection(o) for o in outcomes) and bench.server_died():
            raise BenchError("the appliance stopped during the load test")


def summary(wall_s: float, outcomes: list[Completion | BenchError], lone_ttft_ms: float | None) -> dict[str, Any]:
    done = [outcome for outcome in outcomes if isinstance(outcome, Completion)]
    rejected = sum(1 for outcome in outcomes if is_rejection(outcome))
    tokens = sum(completion.tokens for completion in done)
    ttft = spread([completion.ttft_s for completion in done], 1000)
    return {
        "requests": len(outcomes),
        "completed": len(done),
        "rejected_429": rejected,
        "failed": len(outcomes) - len(done) - rejected,
        "errors": sorted({str(outcome) for outcome in outcomes if isinstance(outcome, BenchError)}),
        "wall_s": wall_s,
        "tokens": tokens,
        "aggregate_tokens_per_s": tokens / wall_s if done else 0.0,
        "per_stream_tokens_per_s": [c.tokens / wall_s for c in done],
        "per_stream_generation_tokens_per_s": median([c.generation_tokens_per_s for c in done]),
        "ttft_ms": ttft,
        "queueing_ms": None if lone_ttft_ms is None or ttft["p50"] is None else max(0.0, ttft["p50"] - lone_ttft_ms),
    }
