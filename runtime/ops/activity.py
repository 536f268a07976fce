"""The last minutes of activity (generated tokens/s, API requests/min), sampled from the runtime's own counters.

One `Activity` lives as long as the process (every app generation shares it, as they share the metrics);
the first app's lifespan samples it every `interval_s` on the event loop: two sums under the metrics lock.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass

from .metrics import Metrics

INTERVAL_S = 10.0
KEPT = 60  # ten minutes at the default interval


@dataclass(frozen=True)
class Sample:
    at: float  # time.time(), for the chart's labels
    clock: float  # time.monotonic(), for rates: a device's wall clock jumps at its first NTP sync
    tokens_out: float
    api_requests: float


class Activity:
    def __init__(self, metrics: Metrics, *, interval_s: float = INTERVAL_S, kept: int = KEPT) -> None:
        self.metrics, self.interval_s, self.kept = metrics, interval_s, kept
        self._samples: deque[Sample] = deque(maxlen=kept + 1)  # rates are between neighbours

    def sample(self, at: float | None = None, clock: float | None = None) -> None:
        tokens = self.metrics.total("cortex_tokens_total", lambda labels: labels.get("direction") == "out")
        requests = self.metrics.total("cortex_requests_total", lambda labels: labels["route"].startswith("/v1/"))
        at, clock = time.time() if at is None else at, time.monotonic() if clock is None else clock
        self._samples.append(Sample(at, clock, tokens, requests))

    def series(self) -> dict[str, object]:
        """Rates over each interval, oldest first (`points`: `[{at, tokens_per_s, requests_per_min}]`), at most
        `kept` of them, one every `interval_s`."""
        samples = list(self._samples)
        points = []
        for before, after in itertools.pairwise(samples):
            seconds = max(after.clock - before.clock, 1e-3)
            points.append({
                "at": round(after.at, 3),
                "tokens_per_s": round((after.tokens_out - before.tokens_out) / seconds, 2),
                "requests_per_min": round((after.api_requests - before.api_requests) * 60 / seconds, 2),
            })  # fmt: skip
        return {"interval_s": self.interval_s, "kept": self.kept, "points": points}

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(self.interval_s)
