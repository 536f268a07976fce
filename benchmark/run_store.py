"""Bench runs kept in `<data>/cortex.db` (runtime/ops/database.py): one row per run, its whole report as JSON."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from menlo_cortex.runtime.ops.database import DatabaseError, database_path, transaction

from .errors import BenchError, UsageError

# What the readers (tables, cards, compare) index in a stored report, and the type they expect there.
REPORT_SHAPE: dict[str, type] = {"target": dict, "host": dict, "kinds": list, "results": dict, "complete": bool}
HOST_LISTS = ("cpu_flags", "accelerators")


@dataclass(frozen=True)
class StoredRun:
    id: int
    started_at: str
    label: str
    model: str
    complete: bool
    report: dict[str, Any]


class RunStore:
    def __init__(self, data: Path) -> None:
        self.path = database_path(data)

    def check(self) -> None:
        """Open (and create or upgrade) the database now: a run is not started that could not be stored."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect():
            pass

    def add(self, report: dict[str, Any]) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            target = report["target"]
            row = (report["started_at"], target["label"], target["model"], int(report["complete"]), json.dumps(report))
            cursor = db.execute(
                "INSERT INTO bench_runs (started_at, label, model, complete, report) VALUES (?, ?, ?, ?, ?)", row
            )
            return int(cursor.lastrowid or 0)

    def runs(self) -> list[StoredRun]:
        if not self.path.exists():
            return []
        with self._connect() as db:
            return [_stored(row, self.path) for row in db.execute("SELECT * FROM bench_runs ORDER BY id")]

    def get(self, run_id: int) -> StoredRun:
        if self.path.exists():
            with self._connect() as db:
                row = db.execute("SELECT * FROM bench_runs WHERE id = ?", (run_id,)).fetchone()
                if row is not None:
                    return _stored(row, self.path)
        raise UsageError(f"no bench run {run_id} in {self.path} (cortex bench runs lists them)")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            with transaction(self.path) as db:
                yield db
        except DatabaseError as exc:
            raise BenchError(str(exc)) from None


def _stored(row: tuple[Any, ...], path: Path) -> StoredRun:
    run_id, started_at, label, model, complete, text = row
    try:
        report = json.loads(text)
        _check_shape(report)
        return StoredRun(int(run_id), str(started_at), str(label), str(model), bool(complete), report)
    except (TypeError, ValueError, RecursionError):
        raise BenchError(f"{path}: run {run_id} is damaged (not a bench report)") from None


def _check_shape(report: object) -> None:
    if not isinstance(report, dict) or any(not isinstance(report.get(k), t) for k, t in REPORT_SHAPE.items()):
        raise TypeError("not a report")
    lists = [report["kinds"], *(report["host"].get(key) for key in HOST_LISTS)]
    if not all(isinstance(found, list) and all(isinstance(item, str) for item in found) for found in lists):
        raise TypeError("not a report")
