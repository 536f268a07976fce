"""Download progress: what a downloader reports, and two ways of showing it on a stream."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TextIO

Clock = Callable[[], float]


class Progress(Protocol):
    """Told about one download at a time: begin, any number of updates, end."""

    def begin(self, label: str, total: int | None) -> None: ...

    def update(self, done: int) -> None: ...

    def end(self, ok: bool) -> None: ...


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000:
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1000
    return f"{count:.1f} TB"


class StreamProgress:
    """One rewritten line on a terminal; otherwise a line every `interval` seconds (logs stay readable)."""

    def __init__(self, stream: TextIO, *, tty: bool, interval: float = 5.0, clock: Clock = time.monotonic):
        self._stream, self._tty, self._interval, self._clock = stream, tty, interval, clock
        self._label, self._done = "", 0
        self._total: int | None = None
        self._started = self._last_shown = 0.0

    def begin(self, label: str, total: int | None) -> None:
        self._label, self._total, self._done = label, total, 0
        self._started = self._last_shown = self._clock()
        size = f" ({human_bytes(total)})" if total is not None else ""
        self._stream.write(f"{label}: downloading{size}\n")
        self._stream.flush()

    def update(self, done: int) -> None:
        self._done = done
        now = self._clock()
        # A terminal redraws often but not on every chunk; a log gets a line per interval.
        if now - self._last_shown >= (0.1 if self._tty else self._interval):
            self._last_shown = now
            self._show(self._line(now), final=False)

    def end(self, ok: bool) -> None:
        outcome = "done" if ok else "failed"
        self._show(f"{self._line(self._clock())} {outcome}", final=True)

    def _line(self, now: float) -> str:
        elapsed = max(now - self._started, 1e-6)
        rate = f"{human_bytes(self._done / elapsed)}/s"
        if self._total:
            percent = min(100.0, 100.0 * self._done / self._total)
            return f"{self._label}: {percent:5.1f}% {human_bytes(self._done)} of {human_bytes(self._total)}, {rate}"
        return f"{self._label}: {human_bytes(self._done)}, {rate}"

    def _show(self, line: str, *, final: bool) -> None:
        if self._tty:
            self._stream.write(f"\r\x1b[K{line}" + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
