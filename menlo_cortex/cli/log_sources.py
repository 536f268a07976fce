"""Where `cortex view logs` reads lines: a log file followed across rotation, or the journal of a systemd unit."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

Lines = Callable[[list[str]], None]
POLL_S = 0.25
BACKLOG_LINES = 5000  # of the journal, as tail -n


class SourceError(Exception):
    """The logs cannot be read; the message says which and why."""


@dataclass(frozen=True)
class FileSource:
    path: Path

    def describe(self) -> str:
        return str(self.path)

    def check(self) -> None:
        try:
            with _open(self.path):
                pass
        except OSError as exc:
            raise SourceError(f"{self.path}: cannot read the log file ({exc.strerror})") from None

    def follow(self, deliver: Lines, stop: threading.Event) -> None:
        """Every line now in the file, then new ones as they are written; a rotated file is read from its start."""
        while not stop.is_set():
            try:
                with _open(self.path) as file:
                    self._follow_one(file, deliver, stop)
            except FileNotFoundError:  # between a rotation's rename and the new file
                stop.wait(POLL_S)

    def _follow_one(self, file: TextIO, deliver: Lines, stop: threading.Event) -> None:
        identity = os.fstat(file.fileno()).st_ino
        while not stop.is_set():
            lines = _complete_lines(file)
            if lines:
                deliver(lines)
                continue
            if _replaced(self.path, identity, file.tell()):
                return
            stop.wait(POLL_S)


def _open(path: Path) -> TextIO:
    return path.open(encoding="utf-8", errors="replace", newline="")


def _complete_lines(file: TextIO, most: int = 2000) -> list[str]:
    """Up to `most` whole lines; a line still being written is left for the next read."""
    lines: list[str] = []
    while len(lines) < most:
        position = file.tell()
        line = file.readline()
        if not line.endswith("\n"):
            file.seek(position)
            break
        lines.append(line)
    return lines


def _replaced(path: Path, identity: int, offset: int) -> bool:
    try:
        status = path.stat()
    except FileNotFoundError:
        return False  # renamed away and not yet made again: keep the old one open
    return status.st_ino != identity or status.st_size < offset


@dataclass(frozen=True)
class JournalSource:
    unit: str

    def describe(self) -> str:
        return f"journal of {self.unit}"

    def command(self) -> list[str]:
        return ["journalctl", "--unit", self.unit, "--output", "cat", "--lines", str(BACKLOG_LINES), "--follow"]

    def check(self) -> None:
        try:
            probe = subprocess.run([*self.command()[:-1], "--lines", "1"], capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SourceError(f"journalctl cannot run ({type(exc).__name__})") from None
        if probe.returncode != 0:
            first = probe.stderr.decode(errors="replace").strip().splitlines()[:1]
            raise SourceError(f"journalctl cannot read the journal of {self.unit}: {''.join(first)[:200]}")

    def follow(self, deliver: Lines, stop: threading.Event) -> None:
        process = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                   errors="replace")  # fmt: skip
        threading.Thread(target=_stop_when, args=(stop, process), daemon=True).start()
        assert process.stdout is not None
        for line in process.stdout:
            deliver([line])
        process.wait()


def _stop_when(stop: threading.Event, process: subprocess.Popen[str]) -> None:
    stop.wait()
    process.terminate()


LogSource = FileSource | JournalSource
