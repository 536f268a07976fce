"""Logging: stdout always, a line-rotated file in `logs.path` when set, llama.cpp's log to `logs.llama`.

Every record carries the id of the request it was logged in (`-` outside a request), taken
from a context variable that the request middleware sets: asyncio tasks and anyio worker
threads copy it, so engine code logging from a generation thread gets the id too.
"""

from __future__ import annotations

import ctypes
import logging
import logging.handlers
import sys
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any

from menlo_cortex.cortexfile.schema.paths import LogLevel, Logs

REQUEST_ID: ContextVar[str] = ContextVar("cortex_request_id", default="-")
LOG_FILE = "cortex.log"
LLAMA_LOG_FILE = "llama.log"
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
    """Replace the root logger's handlers with ours; return them (the caller closes them on exit)."""
    logging.addLevelName(TRACE, "TRACE")
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stdout)]
    if logs.path is not None:
        logs.path.mkdir(parents=True, exist_ok=True)
        handlers.append(LineRotatingFileHandler(logs.path / LOG_FILE, logs.max_lines))
    formatter = logging.Formatter(FORMAT)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level_of(logs, debug))
    return handlers


def llama_log_path(logs: Logs) -> Path | None:
    if logs.llama is not None:
        return logs.llama
    return logs.path / LLAMA_LOG_FILE if logs.path is not None else None


class LlamaLog:
    """llama.cpp's own log (a process-wide C callback) written to a file; `close()` restores stderr."""

    def __init__(self, path: Path) -> None:
        import llama_cpp

        path.parent.mkdir(parents=True, exist_ok=True)
        self._llama_cpp: Any = llama_cpp
        self._file = path.open("a", encoding="utf-8", buffering=1)
        # ctypes keeps only a pointer: this object must keep the callback alive while it is installed.
        self._callback: Callable[..., None] = llama_cpp.llama_log_callback(self._write)
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))

    def _write(self, level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if not self._file.closed:
            self._file.write(text.decode("utf-8", errors="replace"))

    def close(self) -> None:
        from llama_cpp import _logger

        self._llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
        self._file.close()
