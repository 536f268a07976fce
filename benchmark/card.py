"""A BenchCard: one model on one machine, from stored runs. Markdown with the figures side by side and three
SVG charts (tokens/s against concurrency, the distribution of gaps between tokens, memory over time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from menlo_cortex.runtime.ops.durable import write_atomically
from menlo_cortex.runtime.ops.text import printable

from .figures import MB, figures, load_levels, ratio
from .run_store import StoredRun
from .svg import Series, line_chart

MARKDOWN = set("\\`*_{}[]()<>!|~&")
RUNS = "runs.json"
CHARTS = ("tokens-per-s.svg", "token-gaps.svg", "memory.svg")


def render_card(runs: list[StoredRun]) -> dict[str, str]:
    """{file name: text} for the card of `runs` (the first run's host and model head the card)."""
    return {
        "README.md": _markdown(runs),
        RUNS: json.dumps({str(run.id): run.report for run in runs}, indent=1) + "\n",
        CHARTS[0]: line_chart("Throughput against concurrency", "concurrent streams", "aggregate tokens/s",
                              [Series(_name(run), _throughput(run.report)) for run in runs], log_x=True),
        CHARTS[1]: line_chart("Gaps between streamed tokens (share at or below)", "gap (ms)", "share of gaps",
                              [Series(_name(run), _distribution(run.report)) for run in runs]),
        CHARTS[2]: line_chart("Resident memory of the server over the run", "seconds since start", "MB",
                              [Series(_name(run), _memory(run.report)) for run in runs]),
    }  # fmt: skip


def write_card(runs: list[StoredRun], folder: Path) -> list[Path]:
    """Each file written whole, so a reader never sees half a card."""
    written = []
    for name, text in render_card(runs).items():
        write_atomically(folder / name, text)
        written.append(folder / name)
    return written


def _markdown(runs: list[StoredRun]) -> str:
    first = runs[0].report
    host, target = first["host"], first["target"]
    lines = [
        f"# BenchCard: {_md(target['model'])} on {_md(host['cpu_model'])}",
        "",
        f"Made by `cortex bench card` (cortex {_md(host['cortex_version'])}) from the runs below, each measured by "
        "`cortex bench` with the same workload; every figure of every run is in [runs.json](runs.json).",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {_md(host['cpu_model'])}, {_md(host['cores'])} cores ({_md(' '.join(host['cpu_flags']))}) |",
        f"| memory | {_mb(host['memory_bytes'])} |",
        f"| accelerators | {_md(', '.join(host['accelerators']) or 'none')} |",
        f"| OS, kernel | {_md(host['os'])}, {_md(host['kernel'])} |",
        f"| model sha256 | {_md(_model_sha256(runs))} |",
        "",
        _runs_table(runs),
        "",
        _figures_table(runs),
        "",
        *(f"![{name.removesuffix('.svg')}]({name})" for name in CHARTS),
        "",
    ]
    return "\n".join(lines)


def _model_sha256(runs: list[StoredRun]) -> str:
    """A --url run cannot know it; a run of the appliance started from the Cortexfile can."""
    return next((str(r.report["target"]["model_sha256"]) for r in runs if r.report["target"].get("model_sha256")),
                "unknown")  # fmt: skip


def _runs_table(runs: list[StoredRun]) -> str:
    rows = ["| run | server | started (UTC) | kinds | state |", "|---|---|---|---|---|"]
    for run in runs:
        report = run.report
        state = "complete" if run.complete else f"incomplete: {_md(report.get('stopped'))}"
        where = report["target"].get("url") or f"cortex start -f {Path(report['target']['cortexfile']).name}"
        kinds = _md(", ".join(report["kinds"]))
        rows.append(f"| {run.id} | {_md(run.label)} ({_md(where)}) | {_md(run.started_at)} | {kinds} | {state} |")
    return "\n".join(rows)


def _figures_table(runs: list[StoredRun]) -> str:
    """Each run's figures in a column; with two runs, the second over the first."""
    columns = [{(f.kind, f.name): f for f in figures(run.report)} for run in runs]
    keys = list(dict.fromkeys(key for column in columns for key in column))
    pair = len(runs) == 2
    names = [_md(_name(run)) for run in runs] + ([f"run {runs[1].id} / run {runs[0].id}"] if pair else [])
    rows = ["| | | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for key in keys:
        cells = [column[key].text() if key in column else "" for column in columns]
        if pair:
            cells.append(ratio(columns[0].get(key), columns[1].get(key)))
        rows.append(f"| {key[0]} | {key[1]} | {' | '.join(cells)} |")
    return "\n".join(rows)


def _throughput(report: dict[str, Any]) -> list[tuple[float, float]]:
    return [(streams, level["aggregate_tokens_per_s"]) for streams, level in load_levels(report)]


def _distribution(report: dict[str, Any]) -> list[tuple[float, float]]:
    gaps = sorted(report.get("results", {}).get("runtime", {}).get("token_gaps_ms") or [])
    step = max(1, len(gaps) // 200)
    return [(gap, (index + 1) / len(gaps)) for index, gap in enumerate(gaps) if index % step == 0 or
            index == len(gaps) - 1]  # fmt: skip


def _memory(report: dict[str, Any]) -> list[tuple[float, float]]:
    return [(t, bytes_ / MB) for t, bytes_ in (report.get("memory") or {}).get("samples") or []]


def _name(run: StoredRun) -> str:
    return f"run {run.id}: {run.label}"


def _mb(value: object) -> str:
    return f"{value / MB:.0f} MB" if isinstance(value, int) else "unknown"


def _md(text: object) -> str:
    """A value inside a markdown table cell: one line of printable text, every markdown and HTML character
    escaped (no link, image, code span or tag can come from a label)."""
    line = printable(str(text), 200)
    return "".join(f"&#{ord(char)};" if char in MARKDOWN else char for char in line)
