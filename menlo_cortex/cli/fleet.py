"""`cortex fleet status`: every device of a fleet file asked at once; the table (or --json) of their states."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from menlo_cortex.exits import Exit


def register(sub: Any) -> None:
    fleet = sub.add_parser("fleet", help="oversee many devices").add_subparsers(
        dest="fleet_command", required=True, metavar="SUBCOMMAND"
    )
    status = fleet.add_parser(
        "status",
        help="each device's state, runtime, config commit and generation, models and last errors",
        description="Ask every device of the fleet file over its API (/health, /ready, with the fleet's key), all "
        "at once, and print one line per device. A device that cannot be asked is listed with the reason. "
        "Exit codes: 0 every device is ready and reports no error; 1 one is not (the table says which); "
        "2 a bad fleet file.",
    )
    status.add_argument("-f", "--file", type=Path, default=Path("fleet.yaml"), help="the fleet file (%(default)s)")
    status.add_argument("--json", action="store_true", help="print JSON: one object per device")
    status.set_defaults(run=fleet_status)


def fleet_status(args: argparse.Namespace) -> int:
    try:
        from menlo_cortex.fleet.probe import ask_all
    except ImportError as exc:  # urllib3 comes with the runtime
        needed = "pip install 'menlo-cortex[runtime]'"
        raise RuntimeError(f"cortex fleet needs the runtime here: {exc} ({needed})") from None
    from menlo_cortex.fleet.report import as_json, as_table
    from menlo_cortex.fleet.spec import load_fleet
    from menlo_cortex.fleet.targets import targets

    fleet, _ = load_fleet(args.file)
    statuses = ask_all(targets(fleet, args.file.parent), fleet.timeout_s)
    print(json.dumps(as_json(statuses), indent=1) if args.json else as_table(statuses))
    return Exit.OK if all(status.fine for status in statuses) else Exit.FAILURE
