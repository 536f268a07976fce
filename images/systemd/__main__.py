"""`python -m menlo_cortex.images.systemd -f Cortexfile.yaml [-o DIR]`: the systemd bundle alone, with
the exit codes and error lines of `cortex build --format systemd`."""

from __future__ import annotations

import argparse
import sys

from ...cli.output import print_diagnostics
from ...cortexfile.errors import ConfigError
from .command import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="cortex build --format systemd", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args()
    try:
        return run(args)
    except ConfigError as exc:
        print_diagnostics(exc.diagnostics)
        return 2
    except Exception as exc:  # a build failure: one line, not a traceback
        print(f"cortex: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
