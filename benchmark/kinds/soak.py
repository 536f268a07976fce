"""`stability --duration D`: a bounded request loop for D, with resident memory sampled all along. The leak
slope (bytes per hour), latency drift (ms per hour, and the last quarter's median over the first's) and
error counts; it stops by itself at D. A server that answers nothing for GIVE_UP_S is gone: the run stops."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import BenchError, ServerError, Unreachable
from ..memory import Sampler
from ..session import Bench
from ..stats import median, slope

RETRY_S = 1.0
GIVE_UP_S = 60.0
HOUR_S = 3600.0
SUMMARY_EVERY_S = 5.0
MAX_LATENCIES = 20_000  # past this, every other one is dropped: a month-long run stays a few MB


@dataclass
class Loop:
    started: float = field(default_factory=time.perf_counter)
    answered: float = field(default_factory=time.perf_counter)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (seconds into the loop, ms)
    summarised: float = 0.0

    def record(self, at_s: float, latency_ms: float) -> None:
        self.answered = time.perf_counter()
        self.latencies.append((at_s, latency_ms))
        if len(self.latencies) > MAX_LATENCIES:
            self.latencies[:] = self.latencies[::2]

    def summary_due(self) -> bool:
        due = time.perf_counter() - self.summarised >= SUMMARY_EVERY_S
        self.summarised = time.perf_counter() if due else self.summarised
        return due


def measure(bench: Bench, out: dict[str, Any]) -> None:
    duration = bench.options.duration_s
    loop = Loop()
    sampler = Sampler(bench.current_pid, loop.started, interval_s=max(0.5, duration / 300)).start()
    out |= {"duration_s": duration, "requests": 0, "completed": 0, "failed": 0, "errors": {}}
    try:
        while (elapsed := time.perf_counter() - loop.started) < duration:
            bench.progress("stability", f"{elapsed:.0f}/{duration:.0f} s, {out['requests']} requests")
            _one_request(bench, out, loop)
            if loop.summary_due():
                _summarise(out, loop.latencies, sampler.samples)
    finally:
        sampler.stop()
        _summarise(out, loop.latencies, sampler.samples)


def _one_request(bench: Bench, out: dict[str, Any], loop: Loop) -> None:
    """Counts only once the request has ended, so that requests = completed + failed at every stop."""
    try:
        completion = bench.chat(bench.workload.short(out["requests"]))
    except (ServerError, Unreachable) as exc:
        kind = f"HTTP {exc.status}" if isinstance(exc, ServerError) else "unreachable"
        out["errors"][kind] = out["errors"].get(kind, 0) + 1
        out["failed"] += 1
        out["requests"] += 1
        if bench.server_died():
            raise BenchError("the appliance stopped during the stability run") from None
        if time.perf_counter() - loop.answered > GIVE_UP_S:
            raise BenchError(f"the server has not answered for {GIVE_UP_S:.0f} s: {exc}") from None
        time.sleep(RETRY_S)
        return
    out["completed"] += 1
    out["requests"] += 1
    loop.record(completion.sent - loop.started, completion.total_s * 1000)


def _summarise(out: dict[str, Any], latencies: list[tuple[float, float]], memory: list[tuple[float, int]]) -> None:
    quarter = max(1, len(latencies) // 4)
    first, last = median([ms for _, ms in latencies[:quarter]]), median([ms for _, ms in latencies[-quarter:]])
    leak = slope([(t, float(b)) for t, b in memory[len(memory) // 10 :]])  # past the first tenth: warm-up
    drift = slope(latencies)
    out["latency_ms"] = {"first_quarter_p50": first, "last_quarter_p50": last,
                         "drift_ratio": last / first if first and last else None,
                         "drift_ms_per_hour": None if drift is None else drift * HOUR_S}  # fmt: skip
    out["memory"] = {"leak_bytes_per_hour": None if leak is None else leak * HOUR_S, "samples": len(memory),
                     "first_bytes": memory[0][1] if memory else None,
                     "last_bytes": memory[-1][1] if memory else None}  # fmt: skip
