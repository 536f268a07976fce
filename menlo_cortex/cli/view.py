"""`cortex view logs`: the terminal log viewer, over a log file or the journal of the systemd unit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from menlo_cortex.exits import Exit

from .commands import load_checked
from .defaults import add_defaults_option
from .log_sources import FileSource, JournalSource, LogSource, SourceError

UNIT = "cortex.service"  # the systemd bundle's and the disk image's unit


def register(sub: Any, file_option: Callable[[argparse.ArgumentParser], None]) -> None:
    view = sub.add_parser("view", help="look at the appliance in the terminal").add_subparsers(
        dest="view_command", required=True, metavar="SUBCOMMAND"
    )
    logs = view.add_parser(
        "logs",
        help="the log, followed and filtered (q quits, f follows, / searches, Enter: that request's lines)",
        description="Reads --log-file, else --journal, else the Cortexfile's logs.path (cortex.log there), else "
        f"the journal of {UNIT}. Filters start from the options and change in the viewer.",
    )
    file_option(logs)
    add_defaults_option(logs)
    where = logs.add_mutually_exclusive_group()
    where.add_argument("--log-file", type=Path, metavar="PATH", help="read this log file")
    where.add_argument("--journal", nargs="?", const=UNIT, metavar="UNIT", help=f"read the journal (unit {UNIT})")
    logs.add_argument("--level", choices=["trace", "debug", "info", "warning", "error"], help="least severe shown")
    logs.add_argument("--model", default="", help="only the lines of this model's requests")
    logs.add_argument("--request", default="", help="only the lines of this request id")
    logs.add_argument("--grep", default="", metavar="TEXT", help="only lines holding TEXT (any case)")
    logs.add_argument("--no-follow", action="store_true", help="start paused (f follows)")
    logs.set_defaults(run=view_logs)


def view_logs(args: argparse.Namespace) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("cortex view logs: needs a terminal (for a pipe or a script, read the log file or journalctl)",
              file=sys.stderr)  # fmt: skip
        return Exit.CONFIG
    try:
        from menlo_cortex.runtime.ops.log_records import Criteria

        from .log_viewer import LogViewer
    except ImportError as exc:
        print(f"cortex view logs needs textual: {exc.name} is missing (pip install 'menlo-cortex[view]')",
              file=sys.stderr)  # fmt: skip
        return Exit.FAILURE
    source = _source(args)
    try:
        source.check()
    except SourceError as exc:
        print(f"cortex view logs: {exc}", file=sys.stderr)
        return Exit.FAILURE
    criteria = Criteria((args.level or "").upper(), args.model.strip(), args.request.strip(), args.grep)
    LogViewer(source, criteria, follow=not args.no_follow).run()
    return 0


def _source(args: argparse.Namespace) -> LogSource:
    if args.log_file is not None:
        return FileSource(args.log_file)
    if args.journal is not None:
        return JournalSource(args.journal)
    if Path(args.file).is_file():
        logs = load_checked(args).config.logs
        if logs.path is not None:
            from menlo_cortex.runtime.ops.logs import LOG_FILE

            return FileSource(logs.path / LOG_FILE)
    return JournalSource(UNIT)
