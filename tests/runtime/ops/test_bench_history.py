"""The console's summary of stored bench runs, read from the database `cortex bench` writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from menlo_cortex.benchmark.run_store import RunStore
from menlo_cortex.runtime.ops.bench_history import recent_runs


def report(label: str, levels: dict[str, Any]) -> dict[str, Any]:
    return {"started_at": "2026-12-05T10:00:00Z", "target": {"label": label, "model": "gemma"}, "complete": True,
            "results": {"load": {"levels": levels}}}  # fmt: skip


def test_no_database_is_no_runs(tmp_path: Path) -> None:
    assert recent_runs(tmp_path) == []
    assert not (tmp_path / "cortex.db").exists()  # reading creates nothing


def test_runs_oldest_first_with_throughput_by_streams(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    levels = {"4": {"aggregate_tokens_per_s": 92.5}, "1": {"aggregate_tokens_per_s": 38.0}}
    for index in range(4):
        store.add(report(f"run-{index}", levels))
    runs = recent_runs(tmp_path, shown=3)
    assert [run["label"] for run in runs] == ["run-1", "run-2", "run-3"]
    assert runs[0] | {"id": 0} == {"id": 0, "started_at": "2026-12-05T10:00:00Z", "label": "run-1", "model": "gemma",
                                   "complete": True, "throughput": [[1, 38.0], [4, 92.5]]}  # fmt: skip


def test_a_damaged_report_keeps_its_row_without_figures(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.add(report("odd", {"x": {"aggregate_tokens_per_s": 1}, "2": {"aggregate_tokens_per_s": float("nan")}}))
    run_id = store.add(report("ok", {}))
    with sqlite3.connect(tmp_path / "cortex.db") as db:
        db.execute("UPDATE bench_runs SET report = '{' WHERE id = ?", (run_id,))
    assert [run["throughput"] for run in recent_runs(tmp_path)] == [[], []]
