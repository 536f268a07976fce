"""`init`: disk to memory. Cold and warm start to /ready, memory at ready and once settled, model switches."""

from __future__ import annotations

import time
from typing import Any

from ..session import Bench

SETTLE_S = 1.0


def measure(bench: Bench, out: dict[str, Any]) -> None:
    bench.progress("init", "cold start")
    started, how = bench.start(cold=True)
    how = how or "not cold: the model file is not on this machine yet (the appliance fetched it)"
    out["cold"] = {"health_s": started.health_s, "ready_s": started.ready_s, "method": how}
    bench.progress("init", "warm start")
    started, _ = bench.start()
    out["warm"] = {"health_s": started.health_s, "ready_s": started.ready_s}
    out["peak_at_ready_bytes"] = bench.peak()
    time.sleep(SETTLE_S)
    out["steady_bytes"] = bench.resident()
    out["switch_ms"] = _switches(bench)


def _switches(bench: Bench) -> dict[str, float]:
    """First request to each other model, then back to the measured one: load (if not resident) plus one token."""
    found: dict[str, float] = {}
    for model in [*bench.other_models, bench.workload.model] if bench.other_models else []:
        bench.progress("init", f"switch to {model}")
        body = bench.workload.body("Say yes.", stream=False, max_tokens=1) | {"model": model}
        found[model] = bench.chat(body).total_s * 1000
    return found
