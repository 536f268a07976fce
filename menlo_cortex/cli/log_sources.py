"""Where `cortex view logs` reads lines: a log file followed across rotation, or the journal of a systemd unit."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

Lines = Callable[[list[str]], None]
POLL_S = 0.25
BACKLOG_LINES = 5000  # of the journal, as tail -n
MAX_LINE = 64 * 1024  # bytes of one line shown; the rest is cut


class SourceError(Exception):
    """The logs cannot be read; the message says which and why."""


@dataclass(frozen=True)
class FileSource:
    path: Path

    def describe(self) -> str:
        return str(self.path)

    def check(self) -> None:
        with _open(self.path):
            pass

    def follow(self, deliver: Lines, stop: threading.Event) -> None:
        """Every line now in the file, then new ones as they are written; a rotated file is read from its start."""
        while not stop.is_set():
            try:
                with _open(self.path) as file:
                    self._follow_one(_LineReader(file), deliver, stop)
            except SourceError:  # between a rotation's rename and the new file
                stop.wait(POLL_S)

    def _follow_one(self, reader: _LineReader, deliver: Lines, stop: threading.Event) -> None:
        identity = os.fstat(reader.file.fileno()).st_ino
        while not stop.is_set():
            lines = reader.read()
            if lines:
                deliver(lines)
                continue
            if _replaced(self.path, identity, reader.file.tell()):
                deliver(reader.read())  # what was written to the old file after the last read
                return
            stop.wait(POLL_S)


def _open(path: Path) -> BinaryIO:
    """The log file itself: never through a link at its name, never a FIFO or device (the viewer may run as root
    on a folder the service user owns)."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        why = "a link, which is not followed" if exc.errno == errno.ELOOP else exc.strerror
        raise SourceError(f"{path}: cannot read the log file ({why})") from None
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        raise SourceError(f"{path}: not a regular file")
    return os.fdopen(handle, "rb")


class _LineReader:
    """Whole lines, split at LF only (a CR inside a line is text); a line still being written is left for the
    next read, and one longer than MAX_LINE bytes is cut there and the rest skipped."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.skipping = False  # inside the rest of a line that was cut

    def read(self, most: int = 2000) -> list[str]:
        lines: list[str] = []
        while len(lines) < most:
            position = self.file.tell()
            chunk = self.file.readline(MAX_LINE)
            whole = chunk.endswith(b"\n")
            if not whole and len(chunk) < MAX_LINE:
                self.file.seek(position)
                break
            if not self.skipping:
                lines.append(as_text(chunk) + ("" if whole else " [cut]"))
            self.skipping = not whole
        return lines


def as_text(raw: bytes) -> str:
    return raw[:MAX_LINE].decode("utf-8", errors="replace").rstrip("\n")


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
        process = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        threading.Thread(target=_stop_when, args=(stop, process), daemon=True).start()
        assert process.stdout is not None
        for line in process.stdout:  # split at LF only: a CR in a message cannot start a forged line
            deliver([as_text(line)])
        process.wait()


def _stop_when(stop: threading.Event, process: subprocess.Popen[bytes]) -> None:
    stop.wait()
    process.terminate()


LogSource = FileSource | JournalSource
