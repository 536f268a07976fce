"""The headline figures of a report, declared once: the terminal table, `cortex bench compare` and the
BenchCard all read them from here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MB = 1_000_000


@dataclass(frozen=True)
class Figure:
    kind: str
    name: str
    value: float
    unit: str
    higher_is_better: bool

    def text(self) -> str:
        return f"{number(self.value)} {self.unit}".strip()


def ratio(first: Figure | None, second: Figure | None) -> str:
    """The second figure over the first, as text; "" when either is missing, or not above 0: a difference such as
    queueing (time to first token over a lone stream's) can come out at or below 0 in noise, and its ratio says
    nothing."""
    return f"{second.value / first.value:.2f}" if first and second and first.value > 0 and second.value > 0 else ""


def number(value: float) -> str:
    """Three significant digits or so: 0.42, 4.21, 42.1, 421, 4210."""
    if isinstance(value, int) or (float(value).is_integer() and (abs(value) >= 10 or value == 0)):
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"


# (kind, name, path in results, unit, scale, higher is better)
FIXED = (
    ("init", "cold start to ready", ("init", "cold", "ready_s"), "s", 1, False),
    ("init", "warm start to ready", ("init", "warm", "ready_s"), "s", 1, False),
    ("init", "resident at ready (peak)", ("init", "peak_at_ready_bytes"), "MB", 1 / MB, False),
    ("init", "resident, settled", ("init", "steady_bytes"), "MB", 1 / MB, False),
    ("runtime", "short prompt: time to first token p50", ("runtime", "short", "ttft_ms", "p50"), "ms", 1, False),
    ("runtime", "short prompt: generation", ("runtime", "short", "generation_tokens_per_s"), "tok/s", 1, True),
    ("runtime", "long prompt: time to first token p50", ("runtime", "long", "ttft_ms", "p50"), "ms", 1, False),
    ("runtime", "long prompt: prompt processing", ("runtime", "long", "prompt_tokens_per_s"), "tok/s", 1, True),
    ("runtime", "long prompt: generation", ("runtime", "long", "generation_tokens_per_s"), "tok/s", 1, True),
    ("runtime", "token gap p50", ("runtime", "token_gap_ms", "p50"), "ms", 1, False),
    ("runtime", "token gap p99", ("runtime", "token_gap_ms", "p99"), "ms", 1, False),
    ("runtime", "streamed answer, total", ("runtime", "streaming", "streamed_total_ms"), "ms", 1, False),
    ("runtime", "whole answer, total", ("runtime", "streaming", "whole_total_ms"), "ms", 1, False),
    ("memory", "resident peak over the run", ("memory", "peak_bytes"), "MB", 1 / MB, False),
    ("stability", "requests completed", ("stability", "completed"), "", 1, True),
    ("stability", "requests failed", ("stability", "failed"), "", 1, False),
    ("stability", "memory leak slope", ("stability", "memory", "leak_bytes_per_hour"), "MB/h", 1 / MB, False),
    ("stability", "latency drift (last/first quarter)", ("stability", "latency_ms", "drift_ratio"), "x", 1, False),
)
PER_LEVEL: tuple[tuple[str, tuple[str, ...], str, bool], ...] = (
    ("aggregate", ("aggregate_tokens_per_s",), "tok/s", True),
    ("time to first token p50", ("ttft_ms", "p50"), "ms", False),
    ("queueing", ("queueing_ms",), "ms", False),
    ("rejected (429)", ("rejected_429",), "", False),
    ("failed", ("failed",), "", False),
)


def figures(report: dict[str, Any]) -> Iterator[Figure]:
    results = report.get("results", {}) | {"memory": report.get("memory")}
    for kind, name, path, unit, scale, better in FIXED:
        value = dig(results, path)
        if isinstance(value, int | float):
            yield Figure(kind, name, value * scale, unit, better)
    for streams, level in load_levels(report):
        for name, keys, unit, better in PER_LEVEL:
            value = dig(level, keys)
            if isinstance(value, int | float):
                yield Figure("load", f"{streams} streams: {name}", value, unit, better)


def load_levels(report: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    levels = dig(report.get("results", {}), ("load", "levels")) or {}
    return sorted((int(streams), level) for streams, level in levels.items())


def dig(document: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document
