"""`cortex models fit`: which of the Cortexfile's models fit this machine, with their memory and speed estimates."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from .commands import load_checked
from .defaults import add_defaults_option
from .flags import add_setting_flags

MIB = 1024 * 1024


def register(sub: Any, file_option: Callable[[argparse.ArgumentParser], None]) -> None:
    models = sub.add_parser("models", help="the Cortexfile's models on this machine").add_subparsers(
        dest="models_command", required=True, metavar="SUBCOMMAND"
    )
    fit = models.add_parser(
        "fit",
        help="memory each model takes here (weights, KV cache, buffers), whether it fits, and its tokens/s estimate",
        description="Reads this machine (memory available and its cgroup limit, cores, CPU flags, accelerators) and "
        "measures its memory bandwidth once (a few seconds, then cached); sizes each model from its GGUF header "
        "at its context and slots. Exit 0 when every model fits, 1 when one does not or is not here.",
    )
    file_option(fit)
    fit.add_argument("--json", action="store_true", help="machine-readable output")
    add_setting_flags(fit)
    add_defaults_option(fit)
    fit.set_defaults(run=models_fit)


def models_fit(args: argparse.Namespace) -> int:
    from menlo_cortex.benchmark.fit import fit_models, machine_summary, this_machine

    config = load_checked(args).config
    machine = this_machine()
    rows = fit_models(config, machine)
    if args.json:
        print(json.dumps({"machine": machine_summary(machine), "models": rows}, indent=2))
    else:
        _print_table(machine_summary(machine), rows)
    return 0 if all(row["fits"] for row in rows) else 1


def _print_table(machine: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    print(
        f"{machine['cpu_model']}, {machine['cores']} cores, {machine['memory_available'] / MIB:.0f} MiB of "
        f"{machine['memory_total'] / MIB:.0f} MiB available, memory bandwidth {_gb_s(machine['memory_bandwidth'])}"
    )

    print(f"{'MODEL':<24} {'FITS':<5} {'MEMORY':>10} {'CONTEXT':>8} {'SLOTS':>6} {'TOKENS/S':>9}  WHY NOT")
    for row in rows:
        memory = f"{row['memory']['total'] / MIB:.0f} MiB" if row["memory"] else "-"
        speed = f"~{row['tokens_per_s']:g}" if row["tokens_per_s"] else "-"
        print(f"{row['id'][:24]:<24} {'yes' if row['fits'] else 'no':<5} {memory:>10} {row['context'] or '-':>8} "
              f"{row['slots'] or '-':>6} {speed:>9}  {row['reason'] or ''}")  # fmt: skip


def _gb_s(bandwidth: int | None) -> str:
    return f"{bandwidth / 1e9:.1f} GB/s" if bandwidth else "not measured (numpy is missing)"
