"""What a person reads: a run as a table, two runs side by side with their ratios, the stored runs."""

from __future__ import annotations

from typing import Any

from .figures import figures, load_levels, number, ratio
from .run_store import StoredRun
from .stats import median


def table(report: dict[str, Any]) -> str:
    target = report["target"]
    lines = [f"{target['label']} · model {target['model']} · {report['host']['cpu_model']}, "
             f"{report['host']['cores']} cores"]  # fmt: skip
    kind = ""
    for figure in figures(report):
        if figure.kind != "load":
            lines.append(f"{figure.kind if figure.kind != kind else '':10}{figure.name:44}{figure.text():>14}")
            kind = figure.kind
    lines += _load_table(report)
    cold = (report["results"].get("init", {}).get("cold") or {}).get("method")
    if cold:
        lines.append(f"{'':10}cold start: {cold}")
    warning = report["results"].get("runtime", {}).get("warning")
    if warning:
        lines.append(f"WARNING: {warning}")
    if not report["complete"]:
        lines.append(f"INCOMPLETE: {report['stopped']}")
    return "\n".join(lines)


def _load_table(report: dict[str, Any]) -> list[str]:
    levels = load_levels(report)
    if not levels:
        return []
    lines = [f"{'load':10}{'streams':>8}{'tok/s':>10}{'per stream':>12}{'TTFT p50':>10}{'queueing':>10}"
             f"{'429':>6}{'failed':>8}"]  # fmt: skip
    for streams, level in levels:
        share = median(level["per_stream_tokens_per_s"]) or 0.0
        ttft, queued = level["ttft_ms"]["p50"], level["queueing_ms"]
        lines.append(f"{'':10}{streams:>8}{number(level['aggregate_tokens_per_s']):>10}{number(share):>12}"
                     f"{_ms(ttft):>10}{_ms(queued):>10}{level['rejected_429']:>6}{level['failed']:>8}")  # fmt: skip
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{number(value)} ms"


def comparison(first: StoredRun, second: StoredRun) -> str:
    """Every figure both runs have: the first's value, the second's, and second/first."""
    mine = {(f.kind, f.name): f for f in figures(first.report)}
    header = f"{'':56}{'run ' + str(first.id):>14}{'run ' + str(second.id):>14}{'ratio':>8}"
    lines = [f"run {first.id}: {first.label} ({first.model}); run {second.id}: {second.label} ({second.model})", header]
    for figure in figures(second.report):
        base = mine.get((figure.kind, figure.name))
        if base is None:
            continue
        lines.append(f"{figure.kind:10}{figure.name:46}{base.text():>14}{figure.text():>14}{ratio(base, figure):>8}")
    lines.append(f"ratio: run {second.id} over run {first.id} (tok/s: above 1 is faster; ms, s, MB: below 1 is better)")
    return "\n".join(lines)


def listing(runs: list[StoredRun]) -> str:
    lines = [f"{'id':>4}  {'started (UTC)':27}{'label':24}{'model':24}{'kinds':28}state"]
    for run in runs:
        kinds = ",".join(run.report.get("kinds", []))
        state = "complete" if run.complete else "incomplete"
        lines.append(f"{run.id:>4}  {run.started_at:27}{run.label[:23]:24}{run.model[:23]:24}{kinds:28}{state}")
    return "\n".join(lines)
