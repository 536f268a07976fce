"""`cortex`: one entry point; each command imports only what it needs (the runtime never
imports the builder, and `validate` imports neither)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from menlo_cortex import __version__
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.exits import Exit

from . import bench as bench_command
from . import build as build_command
from . import commands
from . import data as data_command
from . import fleet as fleet_command
from . import init as init_command
from . import models as models_command
from . import view as view_command
from .defaults import add_defaults_option
from .flags import add_setting_flags
from .output import print_diagnostics

EPILOG = """exit codes: 0 ok; 2 bad Cortexfile, env, flags or usage; 1 a runtime failure
(engine, network, disk); 130 interrupted."""


def _file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", default="Cortexfile.yaml", help="the Cortexfile (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cortex", description="Put an LLM on any device.", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"cortex {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = sub.add_parser("validate", help="check a Cortexfile (static; --preflight adds host checks)")
    _file_option(validate)
    validate.add_argument("--preflight", choices=["start", "build"], help="also run that phase's host checks")
    add_setting_flags(validate)
    add_defaults_option(validate)
    validate.set_defaults(run=commands.validate)

    config = sub.add_parser("config", help="inspect the effective config").add_subparsers(
        dest="config_command", required=True, metavar="SUBCOMMAND"
    )
    show = config.add_parser("show", help="the effective config, each value with its origin; secrets masked")
    _file_option(show)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    add_setting_flags(show)
    add_defaults_option(show)
    show.set_defaults(run=commands.config_show)

    schema = sub.add_parser("schema", help="print the Cortexfile JSON Schema")
    schema.set_defaults(run=commands.schema)

    migrate = sub.add_parser("migrate", help="convert a legacy .cortexrc into a Cortexfile")
    migrate.add_argument("path", help="the .cortexrc file")
    migrate.add_argument("-o", "--output", help="write the Cortexfile here (default: stdout)")
    migrate.set_defaults(run=commands.migrate)

    start = sub.add_parser("start", help="serve the Cortexfile's models (OpenAI-compatible API)")
    _file_option(start)
    add_setting_flags(start)
    add_defaults_option(start)
    start.set_defaults(run=commands.start)

    pull = sub.add_parser("pull", help="download and verify the Cortexfile's remote models into the store")
    _file_option(pull)
    add_setting_flags(pull)
    pull.set_defaults(run=commands.pull)

    follow = sub.add_parser("sync", help="follow the Git repository in sync: apply signed, valid commits")
    _file_option(follow)
    follow.add_argument("--once", action="store_true", help="one round, then exit (1 when it refused or failed)")
    add_defaults_option(follow)
    follow.set_defaults(run=commands.sync)

    update = sub.add_parser("update", help="a device's signed A/B updates: a round, the boot check, the state")
    verbs = update.add_subparsers(dest="update_command", required=True, metavar="SUBCOMMAND")
    for verb, summary, run in (
        ("run", "install a newer signed version into the idle slot and reboot into it (root)", commands.update_run),
        ("check", "keep the slot on trial once every model answers, else go back (at boot)", commands.update_check),
    ):
        command = verbs.add_parser(verb, help=summary)
        _file_option(command)
        add_defaults_option(command)
        command.set_defaults(run=run)
    verbs.add_parser("status", help="the slot booted and the last update's state (JSON)").set_defaults(
        run=commands.update_status
    )

    for module in (build_command, bench_command, data_command, view_command):
        module.register(sub, _file_option)
    for plain in (fleet_command, models_command, init_command):
        plain.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except ConfigError as exc:
        print_diagnostics(exc.diagnostics)
        return Exit.CONFIG
    except KeyboardInterrupt:
        return Exit.INTERRUPTED
    except Exception as exc:  # a runtime failure: say what, not where in our code
        if args.debug:
            raise
        print(f"cortex: error: {exc} (run with --debug for details)", file=sys.stderr)
        return Exit.FAILURE
