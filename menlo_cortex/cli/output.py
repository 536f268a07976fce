"""How the CLI prints diagnostics: one per line on stderr, errors counted at the end."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from menlo_cortex.cortexfile.errors import Diagnostic, errors_only


def print_diagnostics(diagnostics: Iterable[Diagnostic]) -> None:
    items = list(diagnostics)
    for diagnostic in items:
        print(diagnostic, file=sys.stderr)
    errors = len(errors_only(items))
    if errors:
        print(f"{errors} error{'s' if errors != 1 else ''}", file=sys.stderr)
