"""`cortex data`: what the appliance stored (responses kept for previous_response_id), exported or pruned."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from menlo_cortex.cortexfile.data_folder import data_dir
from menlo_cortex.exits import Exit

from .commands import load_checked
from .flags import add_setting_flags


def register(sub: Any, file_option: Callable[[argparse.ArgumentParser], None]) -> None:
    data = sub.add_parser("data", help="the stored conversations: export, prune").add_subparsers(
        dest="data_command", required=True, metavar="SUBCOMMAND"
    )
    export = data.add_parser(
        "export",
        help="write the stored conversations as chat messages, one conversation per line",
        description="Each conversation (a chain of responses continued with previous_response_id) becomes one "
        'line: {"messages": [...], "tools": [...]}, the format fine-tuning tools read. Every API key\'s '
        "conversations are written: the file is created readable by its owner only.",
    )
    export.add_argument("--format", choices=["jsonl"], default="jsonl", help="output format (%(default)s)")
    export.add_argument("-o", "--output", help="write here (default: stdout)")
    data.add_parser("prune", help="apply data.conversations' retention now").add_argument(
        "--older-than", type=_days, metavar="DAYS", help="delete what is older than DAYS instead of retention_days"
    )
    for command, run in ((export, export_conversations), (data.choices["prune"], prune_conversations)):
        file_option(command)
        add_setting_flags(command)
        command.set_defaults(run=run)


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not 0 <= days < 100_000:
        raise argparse.ArgumentTypeError("days from 0 to 99999")
    return days


def _store(args: argparse.Namespace) -> Any:
    from menlo_cortex.runtime.conversations.store import ConversationStore, Retention

    config = load_checked(args).config
    return ConversationStore(data_dir(config, os.environ), Retention.of(config.data.conversations))


def export_conversations(args: argparse.Namespace) -> int:
    from menlo_cortex.runtime.conversations.items import as_json_line, training_example
    from menlo_cortex.runtime.ops.durable import write_atomically

    store = _store(args)
    lines = (as_json_line(training_example(conversation)) + "\n" for conversation in store.conversations())
    count = 0
    if args.output is None:
        for count, line in enumerate(lines, 1):  # noqa: B007  # the count is the loop's last number
            sys.stdout.write(line)
    else:
        text = "".join(lines)
        write_atomically(Path(args.output), text, mode=0o600)  # private: every key's conversations
        count = text.count("\n")
    print(f"{count} conversation{'s' if count != 1 else ''} exported from {store.path}", file=sys.stderr)
    return Exit.OK


def prune_conversations(args: argparse.Namespace) -> int:
    store = _store(args)
    removed = store.prune(args.older_than)
    print(f"{removed} stored response{'s' if removed != 1 else ''} deleted from {store.path}")
    return Exit.OK
