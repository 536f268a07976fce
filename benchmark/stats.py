"""Small statistics over measured values: percentiles, medians, a least-squares slope."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (share in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def spread(values: Sequence[float], scale: float = 1.0) -> dict[str, float | None]:
    """p50, p95 and p99 of `values`, multiplied by `scale` (1000: seconds to milliseconds)."""
    shares = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
    found = {name: percentile(values, share) for name, share in shares.items()}
    return {name: None if value is None else value * scale for name, value in found.items()}


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x; None with fewer than 3 points or no spread in x."""
    if len(points) < 3:
        return None
    xs, ys = [x for x, _ in points], [y for _, y in points]
    try:
        return statistics.linear_regression(xs, ys).slope
    except statistics.StatisticsError:
        return None
