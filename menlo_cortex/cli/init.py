"""`cortex init`: a starting Cortexfile for this machine (or a board's recipe) with the largest catalogue chat
model that fits it, validated before it is written; an existing file is never replaced."""

from __future__ import annotations

import argparse
import errno
import os
import tempfile
from pathlib import Path
from typing import Any

from menlo_cortex.cortexfile import catalogue
from menlo_cortex.cortexfile.errors import ConfigError, Diagnostic, Origin
from menlo_cortex.cortexfile.loader import load
from menlo_cortex.cortexfile.starter import starter_text
from menlo_cortex.exits import Exit

from .flags import add_setting_flags
from .models import board_of, resolved_or_bare

MIB = 1024 * 1024
MIN_TOKENS_S = 5.0  # slower than this reads as stuck: a smaller model serves a person better
# A board's speed cannot be measured from here: on small boards speed runs out before memory does, so init keeps
# to models that need at most this share of the board's memory.
BOARD_SHARE = 4


def register(sub: Any) -> None:
    init = sub.add_parser(
        "init",
        help="write a starting Cortexfile with the best catalogue model for this machine (or --hardware NAME)",
        description="Sizes every catalogue chat model for this machine (its memory and memory bandwidth; see "
        "`cortex models fit`) or for a board's recipe (its memory), and writes a commented Cortexfile with the "
        f"largest that fits and answers at least {MIN_TOKENS_S:g} tokens/s (on a board, whose speed is not known "
        f"here: the largest that needs at most 1/{BOARD_SHARE} of its memory). It never replaces a file.",
    )
    init.add_argument("--hardware", metavar="NAME", help="a board's recipe (recipes/hardware) instead of this machine")
    init.add_argument("-o", "--output", default="Cortexfile.yaml", help="the file to write (default: %(default)s)")
    add_setting_flags(init)
    init.set_defaults(run=run_init)


def run_init(args: argparse.Namespace) -> int:
    from menlo_cortex.benchmark.fit import fit_catalogue, this_machine
    from menlo_cortex.runtime.models.weight_copies import kernels_from_cpu_flags

    output = Path(args.output)
    if output.exists() or output.is_symlink():
        raise ConfigError([Diagnostic(Origin(str(output)), "", "exists: cortex init never replaces a file",
                                      "move it away, or write another with -o FILE")])  # fmt: skip
    board = board_of(args.hardware) if args.hardware else None
    machine = this_machine(bandwidth_needed=board is None, gpus_needed=False)
    # This CPU's flags, not the CPU module's: loading llama.cpp would write its self-test into a data folder.
    kernels = board.kernels if board else kernels_from_cpu_flags(machine.cpu_flags)
    rows = fit_catalogue(resolved_or_bare(args).config, machine, kernels, board=board)
    row = best_chat_model(rows, board.memory_mb * MIB // BOARD_SHARE if board else None)
    if row is None:
        available = f"the {machine.memory_available // MIB} MiB available"
        room = f"a {board.name}'s {board.memory_mb} MiB" if board else available
        print(f"cortex: error: no catalogue chat model fits {room} (see cortex models fit)")
        return Exit.FAILURE
    share = f"a {args.hardware} ({board.memory_mb} MiB; at most 1/{BOARD_SHARE} of it)" if board else None
    where = share or _machine_line(machine)
    text = starter_text(catalogue.entry(row["id"]), [f"For {where}:", *_figures(row)], args.hardware)
    write_new(output, text)
    print(f"wrote {output}: {row['id']} ({_figures(row)[0]})")
    return Exit.OK


def best_chat_model(rows: list[dict[str, Any]], most_bytes: int | None = None) -> dict[str, Any] | None:
    """The largest chat model that fits, is fast enough (where its speed is known) and needs at most
    `most_bytes`; rows come ranked by fit_catalogue (fits first, the largest first)."""
    for row in rows:
        fast = row["tokens_per_s"] is None or row["tokens_per_s"] >= MIN_TOKENS_S
        small = most_bytes is None or row["memory"]["total"] <= most_bytes
        if row["kind"] == "chat" and row["fits"] and fast and small:
            return row
    return None


def write_new(output: Path, text: str) -> None:
    """Write `text` under a temporary name beside `output`, load it as a Cortexfile, then link it into place:
    the link fails if a file appeared meanwhile, so nothing is ever replaced. Where the file system has no
    hard links (FAT), the file is created exclusively (never through a link) and written."""
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".yaml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o644)  # a Cortexfile holds no secret: the service's user reads it
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        load(temporary)  # ConfigError: a starter that does not validate is never written
        _link_or_create(Path(temporary), output, text)
    except FileExistsError:
        raise ConfigError([Diagnostic(Origin(str(output)), "", "exists: cortex init never replaces a file")]) from None
    finally:
        os.unlink(temporary)


def _link_or_create(temporary: Path, output: Path, text: str) -> None:
    try:
        os.link(temporary, output)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())


def _machine_line(machine: Any) -> str:
    bandwidth = f", memory bandwidth {machine.bandwidth / 1e9:.1f} GB/s" if machine.bandwidth else ""
    return f"this machine ({machine.cpu_model}, {machine.memory_available // MIB} MiB available{bandwidth})"


def _figures(row: dict[str, Any]) -> list[str]:
    memory = f"about {row['memory']['total'] // MIB} MiB with {row['context']} tokens of context"
    memory += f" x {row['slots']} slots" if row["slots"] and row["slots"] > 1 else ""
    speed = f", about {row['tokens_per_s']:g} tokens/s" if row["tokens_per_s"] else ""
    return [f"{memory}{speed}", f"the largest catalogue chat model that fits ({row['header']})"]
