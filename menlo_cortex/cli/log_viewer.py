"""`cortex view logs`: the appliance's log in a terminal (textual), followed as it grows, filtered by level,
model, request and text; Enter on a line shows only its request's lines, Escape shows them all again."""

from __future__ import annotations

import re
import threading
from dataclasses import replace

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Input, Select, Static

from menlo_cortex.runtime.ops.log_records import LEVELS, NO_REQUEST, Criteria, LogReader, LogRecord

from .log_sources import LogSource

LEVEL_STYLES = {"ERROR": "bold red", "CRITICAL": "bold red", "WARNING": "yellow", "DEBUG": "dim", "TRACE": "dim"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SHOWN_MOST = 20_000  # rows kept in the table; the filters search every record read


class LogViewer(App[None]):
    TITLE = "cortex view logs"
    CSS = """
    #filters { height: 3; }
    #filters Input { width: 1fr; }
    #filters Select { width: 20; }
    #where { height: 1; padding: 0 1; color: $text-muted; }
    DataTable { height: 1fr; }
    """
    BINDINGS = [  # noqa: RUF012 (textual's own declaration style)
        ("q", "quit", "Quit"),
        ("f", "toggle_follow", "Follow"),
        ("slash", "focus_text", "Search"),
        ("escape", "all_requests", "All requests"),
    ]

    def __init__(self, source: LogSource, criteria: Criteria, *, follow: bool = True) -> None:
        super().__init__()
        self.source, self.criteria, self.following = source, criteria, follow
        self.reader = LogReader()
        self.stop = threading.Event()

    def compose(self) -> ComposeResult:
        with Horizontal(id="filters"):
            levels = [(level.lower(), level) for level in LEVELS]
            yield Select(levels, prompt="any level", value=self.criteria.level or Select.NULL, id="level")
            yield Input(self.criteria.model, placeholder="model", id="model")
            yield Input(self.criteria.request, placeholder="request id", id="request")
            yield Input(self.criteria.text, placeholder="text (/)", id="text")
        yield Static(id="where", markup=False)  # a path may hold [brackets]
        yield DataTable(cursor_type="row", zebra_stripes=True, id="lines")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("time", "level", "request", "logger", "message")
        table.focus()
        self._describe()
        self.run_worker(self._read, thread=True, exit_on_error=False)

    def on_unmount(self) -> None:
        self.stop.set()

    def _read(self) -> None:
        self.source.follow(lambda lines: self.call_from_thread(self._add, lines), self.stop)

    def _add(self, lines: list[str]) -> None:
        table = self.query_one(DataTable)
        for record in self.reader.feed(lines):
            if self.criteria.accepts(record, self.reader.request_models):
                _add_row(table, record)
        while table.row_count > SHOWN_MOST:
            table.remove_row(table.coordinate_to_cell_key(Coordinate(0, 0)).row_key)
        if self.following and table.row_count:
            table.move_cursor(row=table.row_count - 1)

    def _refill(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        shown = list(self.reader.matching(self.criteria))[-SHOWN_MOST:]
        for record in shown:
            _add_row(table, record)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1 if self.following else 0)
        self._describe()

    def _describe(self) -> None:
        mode = "following" if self.following else "paused"
        self.query_one("#where", Static).update(f"{self.source.describe()} · {mode}")

    def _filter(self, **changes: str) -> None:
        self.criteria = replace(self.criteria, **changes)
        self._refill()

    @on(Select.Changed, "#level")
    def _level(self, event: Select.Changed) -> None:
        self._filter(level="" if event.value is Select.NULL else str(event.value))

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        if event.input.id in {"model", "request", "text"}:
            self._filter(**{event.input.id: event.value.strip()})

    @on(DataTable.RowSelected)
    def _jump_to_request(self, event: DataTable.RowSelected) -> None:
        """Enter on a line: only the lines of its request (an access line's request, above all)."""
        request = str(event.row_key.value).partition(":")[2]
        if request and request != NO_REQUEST:
            self.query_one("#request", Input).value = request  # Input.Changed filters

    def action_toggle_follow(self) -> None:
        self.following = not self.following
        self._describe()
        table = self.query_one(DataTable)
        if self.following and table.row_count:
            table.move_cursor(row=table.row_count - 1)

    def action_focus_text(self) -> None:
        self.query_one("#text", Input).focus()

    def action_all_requests(self) -> None:
        self.query_one("#request", Input).value = ""
        self.query_one(DataTable).focus()


def _add_row(table: DataTable[Text], record: LogRecord) -> None:
    """Every cell a plain Text (never parsed as markup), control characters shown as `?`: a log line holds
    what clients sent and what other programs wrote to the journal."""
    hidden = len(record.extra) + record.more
    message = record.message + (f"  (+{hidden} lines)" if hidden else "")
    cells = [record.time[11:], record.request[:12], record.logger, message]
    time, request, logger, text = (Text(_CONTROL.sub("?", cell)) for cell in cells)
    level = Text(record.level, style=LEVEL_STYLES.get(record.level, ""))
    table.add_row(time, level, request, logger, text, key=f"{record.index}:{record.request}")
