"""The `cortex bench` runs stored on this device (`<data>/cortex.db`), summed up for the console's charts."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .database import database_path, transaction

SHOWN = 20  # the most recent runs


def recent_runs(data: Path, shown: int = SHOWN) -> list[dict[str, Any]]:
    """Oldest first: id, start, label, model, complete, and the aggregate tokens/s at each stream count.
    A damaged report keeps its row with no figures; an unreadable database is a `DatabaseError`."""
    path = database_path(data)
    if not path.is_file():
        return []
    with transaction(path, write=False) as db:
        rows = db.execute(
            "SELECT id, started_at, label, model, complete, report FROM bench_runs ORDER BY id DESC LIMIT ?", (shown,)
        ).fetchall()
    return [_summary(row) for row in reversed(rows)]


def _summary(row: tuple[Any, ...]) -> dict[str, Any]:
    run_id, started_at, label, model, complete, text = row
    return {
        "id": int(run_id),
        "started_at": str(started_at),
        "label": str(label),
        "model": str(model),
        "complete": bool(complete),
        "throughput": _throughput(text),
    }


def _throughput(text: str) -> list[list[float]]:
    """`[[streams, aggregate tokens/s], ...]` from the report's load levels (results.load.levels)."""
    try:
        levels = json.loads(text)["results"]["load"]["levels"]
        points = [[int(streams), float(level["aggregate_tokens_per_s"])] for streams, level in levels.items()]
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return []
    return sorted(point for point in points if all(map(math.isfinite, point)))  # JSON has no NaN
