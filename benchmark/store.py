"""Bench runs kept in `<data>/cortex.db` (SQLite): one row per run, its whole report as JSON, the schema
versioned by `PRAGMA user_version`."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BenchError, UsageError

SCHEMA_VERSION = 1
DATABASE = "cortex.db"
MIGRATIONS = {
    1: """
        CREATE TABLE bench_runs (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            label TEXT NOT NULL,
            model TEXT NOT NULL,
            complete INTEGER NOT NULL,
            report TEXT NOT NULL
        );
    """,
}


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
        self.path = data / DATABASE

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
            return [_stored(row) for row in db.execute("SELECT * FROM bench_runs ORDER BY id")]

    def get(self, run_id: int) -> StoredRun:
        if self.path.exists():
            with self._connect() as db:
                row = db.execute("SELECT * FROM bench_runs WHERE id = ?", (run_id,)).fetchone()
                if row is not None:
                    return _stored(row)
        raise UsageError(f"no bench run {run_id} in {self.path} (cortex bench runs lists them)")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=10)
        except sqlite3.Error as exc:
            raise BenchError(f"{self.path}: cannot open the database ({exc})") from None
        try:
            with db:
                _migrate(db, self.path)
                yield db
        except sqlite3.DatabaseError as exc:
            raise BenchError(f"{self.path}: {exc}") from None
        finally:
            db.close()


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise BenchError(f"{path}: made by a newer cortex (schema {version}; this one knows {SCHEMA_VERSION})")
    for step in range(version + 1, SCHEMA_VERSION + 1):
        db.executescript(MIGRATIONS[step])
        db.execute(f"PRAGMA user_version = {step}")


def _stored(row: tuple[Any, ...]) -> StoredRun:
    run_id, started_at, label, model, complete, report = row
    return StoredRun(run_id, started_at, label, model, bool(complete), json.loads(report))
