"""`load`: 1, 2, 4, 8 streams at once. Aggregate and per-stream tokens/s, queueing (time to first token over
the lowest level's, a lone stream's by default), 429s and errors; every request ends in exactly one of
completed, rejected and failed."""

from __future__ import annotations

from typing import Any

from ..client import Completion
from ..errors import BenchError
from ..session import Bench, is_rejection
from ..stats import median, spread


def measure(bench: Bench, out: dict[str, Any]) -> None:
    levels: dict[str, Any] = out.setdefault("levels", {})
    baseline = None  # the lowest level's time to first token (levels come sorted)
    for streams in bench.options.streams:
        bench.progress("load", f"{streams} concurrent stream{'s' if streams > 1 else ''}")
        bodies = [bench.workload.short(index) for index in range(streams)]
        wall_s, outcomes = bench.concurrently(bodies)
        levels[str(streams)] = level = summary(wall_s, outcomes, baseline)
        if baseline is None:
            baseline = level["ttft_ms"]["p50"]
            out["queueing_baseline_streams"] = streams
        if any(isinstance(o, BenchError) and not is_rejection(o) for o in outcomes) and bench.server_died():
            raise BenchError("the appliance stopped during the load test")


def summary(wall_s: float, outcomes: list[Completion | BenchError], baseline_ms: float | None) -> dict[str, Any]:
    """`per_stream_tokens_per_s`: each completed stream's tokens over its own time, queueing included (what
    its client saw)."""
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
        "per_stream_tokens_per_s": [c.tokens / c.total_s for c in done],
        "per_stream_generation_tokens_per_s": median([c.generation_tokens_per_s for c in done]),
        "ttft_ms": ttft,
        "queueing_ms": None if baseline_ms is None or ttft["p50"] is None else ttft["p50"] - baseline_ms,
    }
