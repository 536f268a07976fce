"""The fleet as a table for people and as JSON for scripts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from .probe import DeviceStatus

COLUMNS = ("DEVICE", "STATE", "VERSION", "SLOT", "RUNTIME", "COMMIT", "GEN", "MODELS", "LAST ERRORS")


def as_json(statuses: Sequence[DeviceStatus]) -> list[dict[str, object]]:
    return [asdict(status) for status in statuses]


def as_table(statuses: Sequence[DeviceStatus]) -> str:
    rows = [COLUMNS, *(_row(status) for status in statuses)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS) - 1)]
    return "\n".join(_line(row, widths) for row in rows)


def _line(row: tuple[str, ...], widths: list[int]) -> str:
    """Every column padded to its width but the last, which runs on."""
    cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
    return "  ".join([*cells, row[-1]]).rstrip()


def _row(status: DeviceStatus) -> tuple[str, ...]:
    models = ", ".join(f"{name} ({state})" for name, state in status.models.items())
    return (
        status.name,
        status.state,
        status.version or "-",
        status.slot or "-",
        status.runtime_version or "-",
        (status.commit or "-")[:12],
        "-" if status.generation is None else str(status.generation),
        models or "-",
        "; ".join(status.errors) or "-",
    )
