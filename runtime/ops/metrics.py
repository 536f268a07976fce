"""Prometheus metrics without a global registry: one `Metrics` per app, rendered as text format 0.0.4."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def _labels(values: dict[str, str]) -> Labels:
    return tuple(sorted(values.items()))


def _render_labels(labels: Labels, extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*labels, *extra]
    if not pairs:
        return ""
    escaped = (
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), "")}"'
        for k, v in pairs
    )
    return "{" + ",".join(escaped) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass
class _Metric:
    name: str
    help: str
    kind: str  # counter | gauge | histogram
    buckets: Sequence[float] = ()
    values: dict[Labels, float] = field(default_factory=dict)
    histograms: dict[Labels, list[float]] = field(default_factory=dict)  # bucket counts..., sum, count

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for labels, value in sorted(self.values.items()):
            lines.append(f"{self.name}{_render_labels(labels)} {_number(value)}")
        for labels, counts in sorted(self.histograms.items()):
            *per_bucket, total, count = counts
            cumulative = 0.0
            for bound, hits in zip([*self.buckets, math.inf], per_bucket, strict=True):
                cumulative += hits
                lines.append(
                    f"{self.name}_bucket{_render_labels(labels, [('le', _number(bound))])} {_number(cumulative)}"
                )
            lines.append(f"{self.name}_sum{_render_labels(labels)} {_number(total)}")
            lines.append(f"{self.name}_count{_render_labels(labels)} {_number(count)}")
        return lines


class Metrics:
    """A small, thread-safe registry. Generation threads and the event loop both update it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: dict[str, _Metric] = {}

    def counter(self, name: str, help: str) -> None:
        self._register(_Metric(name, help, "counter"))

    def gauge(self, name: str, help: str) -> None:
        self._register(_Metric(name, help, "gauge"))

    def histogram(self, name: str, help: str, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self._register(_Metric(name, help, "histogram", tuple(buckets)))

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        with self._lock:
            metric = self._metrics[name]
            key = _labels(labels)
            metric.values[key] = metric.values.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._metrics[name].values[_labels(labels)] = value

    def observe(self, name: str, value: float, **labels: str) -> None:
        self.observe_all(name, (value,), **labels)

    def observe_all(self, name: str, values: Iterable[float], **labels: str) -> None:
        """Each of `values` into one histogram, under one lock: a generation's token gaps, hundreds of them. With no
        values, no series is made."""
        values = list(values)
        if not values:
            return
        with self._lock:
            metric = self._metrics[name]
            counts = metric.histograms.setdefault(_labels(labels), [0.0] * (len(metric.buckets) + 3))
            for value in values:
                index = next((i for i, bound in enumerate(metric.buckets) if value <= bound), len(metric.buckets))
                counts[index] += 1
                counts[-2] += value
                counts[-1] += 1

    def value(self, name: str, **labels: str) -> float:
        """Current value of a counter or gauge (0 when never set); for tests and /health."""
        with self._lock:
            return self._metrics[name].values.get(_labels(labels), 0.0)

    def total(self, name: str, where: Callable[[dict[str, str]], bool] = lambda labels: True) -> float:
        """Sum of a counter or gauge over the label sets `where` accepts (the console's activity)."""
        with self._lock:
            return sum(value for labels, value in self._metrics[name].values.items() if where(dict(labels)))

    def render(self) -> str:
        with self._lock:
            lines = [line for metric in self._metrics.values() for line in metric.render()]
        return "\n".join(lines) + "\n"

    def _register(self, metric: _Metric) -> None:
        with self._lock:
            self._metrics.setdefault(metric.name, metric)


def standard_metrics() -> Metrics:
    """Every metric the runtime exports, declared in one place (names are a public interface)."""
    metrics = Metrics()
    metrics.counter("cortex_requests_total", "HTTP requests by route and status code.")
    metrics.counter("cortex_tokens_total", "Tokens processed, by model and direction (in: prompt, out: generated).")
    metrics.histogram("cortex_time_to_first_token_seconds", "Time from request start to the first generated token.")
    metrics.histogram(
        "cortex_token_latency_seconds",
        "Time between generated tokens.",
        (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    )
    metrics.gauge("cortex_queue_depth", "Requests waiting or running, by model.")
    metrics.histogram("cortex_model_load_seconds", "Time to load a model into memory.", LOAD_BUCKETS)
    metrics.gauge("cortex_model_loaded", "1 when a model is resident, by model.")
    metrics.gauge("cortex_config_generation", "Generation of the config being served (1 at start, +1 per reload).")
    metrics.counter("cortex_config_reloads_total", "Config reloads applied.")
    metrics.counter("cortex_config_reload_failures_total", "Config reloads refused; the running config was kept.")
    return metrics
