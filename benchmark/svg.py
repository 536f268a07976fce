"""Line charts as standalone SVG (no plotting library on a device): axes, ticks, one line per series, a legend.
Every text is XML-escaped; labels come from users."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from menlo_cortex.runtime.ops.text import printable

WIDTH, HEIGHT = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 50
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[float, float]]


def line_chart(title: str, x_label: str, y_label: str, series: Sequence[Series], *, log_x: bool = False) -> str:
    drawn = [s for s in series if s.points]
    xs = [x for s in drawn for x, _ in s.points] or [0.0, 1.0]
    ys = [y for s in drawn for _, y in s.points] or [0.0, 1.0]
    scale = _Scale(min(xs), max(xs), 0.0, max(ys) * 1.05 or 1.0, log_x)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
        *_axes(scale, x_label, y_label, sorted(set(xs)) if log_x else None),
    ]
    for index, one in enumerate(drawn):
        colour = COLOURS[index % len(COLOURS)]
        path = " ".join(f"{scale.x(x):.1f},{scale.y(y):.1f}" for x, y in one.points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        if len(one.points) <= 12:
            parts += [f'<circle cx="{scale.x(x):.1f}" cy="{scale.y(y):.1f}" r="3" fill="{colour}"/>'
                      for x, y in one.points]  # fmt: skip
        legend_y = TOP + 14 + 16 * index
        parts.append(f'<rect x="{LEFT + 10}" y="{legend_y - 9}" width="12" height="3" fill="{colour}"/>')
        parts.append(f'<text x="{LEFT + 28}" y="{legend_y}">{escape(one.label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


@dataclass(frozen=True)
class _Scale:
    x_min: float
    x_max: float
    y_min: float
    y_max: float
    log_x: bool

    def x(self, value: float) -> float:
        low, high, value = (math.log2(v) for v in (self.x_min, self.x_max, value)) if self.log_x else (
            self.x_min, self.x_max, value)  # fmt: skip
        share = (value - low) / (high - low) if high > low else 0.5
        return LEFT + share * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        share = (value - self.y_min) / (self.y_max - self.y_min) if self.y_max > self.y_min else 0.0
        return HEIGHT - BOTTOM - share * (HEIGHT - TOP - BOTTOM)


def _axes(scale: _Scale, x_label: str, y_label: str, x_ticks: list[float] | None) -> list[str]:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    parts = [f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="black"/>']  # fmt: skip
    for value in x_ticks or _ticks(scale.x_min, scale.x_max):
        x = scale.x(value)
        parts.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" stroke="black"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 17}" text-anchor="middle">{_number(value)}</text>')
    for value in _ticks(scale.y_min, scale.y_max):
        y = scale.y(value)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(value)}</text>')
    parts.append(f'<text x="{(LEFT + right) / 2}" y="{HEIGHT - 12}" text-anchor="middle">{escape(x_label)}</text>')
    rotate = quoteattr(f"rotate(-90 16 {(TOP + bottom) / 2})")
    parts.append(f'<text x="16" y="{(TOP + bottom) / 2}" text-anchor="middle" transform={rotate}>'
                 f"{escape(y_label)}</text>")  # fmt: skip
    return parts


def escape(text: str) -> str:
    """Printable characters only (a control character is not allowed in XML at all), then XML-escaped."""
    return xml_escape(printable(text, 120))


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if step * m >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _number(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.2e}"
