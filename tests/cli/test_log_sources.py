"""The viewer's file source: whole lines at LF only, long lines cut, links and special files refused."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from menlo_cortex.cli.log_sources import MAX_LINE, FileSource, SourceError


def read_all(path: Path) -> list[str]:
    """Follow until the file's lines are delivered, then stop."""
    got: list[str] = []
    stop = threading.Event()

    def deliver(lines: list[str]) -> None:
        got.extend(lines)
        stop.set()

    worker = threading.Thread(target=FileSource(path).follow, args=(deliver, stop))
    worker.start()
    worker.join(timeout=10)
    stop.set()
    worker.join()
    return got


def test_a_carriage_return_is_text_and_a_partial_line_waits(tmp_path: Path) -> None:
    log = tmp_path / "cortex.log"
    log.write_bytes(b"one\rstill one\ntwo\n\xff bad utf-8\nhalf a li")
    assert read_all(log) == ["one\rstill one", "two", "\ufffd bad utf-8"]


def test_a_line_longer_than_the_limit_is_cut_and_the_next_one_read(tmp_path: Path) -> None:
    log = tmp_path / "cortex.log"
    log.write_bytes(b"x" * (3 * MAX_LINE) + b"\nnext\n")
    lines = read_all(log)
    assert lines[0] == "x" * MAX_LINE + " [cut]"
    assert lines[1:] == ["next"]


def test_a_link_a_fifo_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_text("root only\n")
    link = tmp_path / "cortex.log"
    link.symlink_to(target)
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    for path, why in [(link, "a link, which is not followed"), (fifo, "not a regular file"),
                      (tmp_path / "none.log", "No such file")]:  # fmt: skip
        with pytest.raises(SourceError, match=why):
            FileSource(path).check()
