"""Logging: stdout always, a line-rotated file in `logs.path` when set, llama.cpp's log to `logs.llama`.

llama.cpp's own messages reach the `cortex.llama` logger (engine.py installs the one process-wide
C callback); when a llama log file is configured they go there instead of the main log.

Every record carries the id of the request it was logged in (`-` outside a request), taken
from a context variable that the request middleware sets: asyncio tasks and anyio worker
threads copy it, so engine code logging from a generation thread gets the id too.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from contextvars import ContextVar
from pathlib import Path
from typing import IO

from menlo_cortex.cortexfile.schema.paths import LogLevel, Logs

REQUEST_ID: ContextVar[str] = ContextVar("cortex_request_id", default="-")
LOG_FILE = "cortex.log"
LLAMA_LOG_FILE = "llama.log"
LLAMA_LOGGER = "cortex.llama"
BACKUPS = 3
TRACE = 5  # below DEBUG: Python has no TRACE level of its own
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_LEVELS = {
    LogLevel.trace: TRACE,
    LogLevel.debug: logging.DEBUG,
    LogLevel.info: logging.INFO,
    LogLevel.warning: logging.WARNING,
    LogLevel.error: logging.ERROR,
}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class LineRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Rotates after `max_lines` lines (the Cortexfile counts lines, not bytes)."""

    def __init__(self, path: Path, max_lines: int, backups: int = BACKUPS) -> None:
        super().__init__(path, backupCount=backups, encoding="utf-8")
        self.max_lines = max_lines
        self.lines = _count_lines(path)

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        return self.lines + self.format(record).count("\n") + 1 > self.max_lines

    def doRollover(self) -> None:
        super().doRollover()
        self.lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        self.lines += self.format(record).count("\n") + 1


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as file:
            return sum(1 for _ in file)
    except FileNotFoundError:
        return 0


def level_of(logs: Logs, debug: bool) -> int:
    return min(_LEVELS[logs.level], logging.DEBUG) if debug else _LEVELS[logs.level]


def configure_logging(logs: Logs, debug: bool = False, stream: IO[str] | None = None) -> list[logging.Handler]:
    """Replace the root logger's handlers with ours; return every handler made (the caller closes them)."""
    logging.addLevelName(TRACE, "TRACE")
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stdout)]
    if logs.path is not None:
        handlers.append(_file_handler(logs.path / LOG_FILE, logs.max_lines))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        root.addHandler(_formatted(handler))
    root.setLevel(level_of(logs, debug))
    return handlers + _route_llama(logs)


def _route_llama(logs: Logs) -> list[logging.Handler]:
    llama = logging.getLogger(LLAMA_LOGGER)
    for old in list(llama.handlers):
        llama.removeHandler(old)
    path = llama_log_path(logs)
    llama.propagate = path is None
    if path is None:
        return []
    handler = _formatted(_file_handler(path, logs.max_lines))
    llama.addHandler(handler)
    return [handler]


def _file_handler(path: Path, max_lines: int) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    return LineRotatingFileHandler(path, max_lines)


def _formatted(handler: logging.Handler) -> logging.Handler:
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestIdFilter())
    return handler


def llama_log_path(logs: Logs) -> Path | None:
    if logs.llama is not None:
        return logs.llama
    return logs.path / LLAMA_LOG_FILE if logs.path is not None else None
