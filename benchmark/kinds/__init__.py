"""What `cortex bench --type` measures. Each kind is a module with `measure(bench, out)` that fills `out` as it
goes, so that a run that stops early keeps what it measured. Named here, imported when run: the CLI lists the
kinds without loading the HTTP client."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..session import Bench

KINDS = {"init": "startup", "runtime": "speed", "load": "concurrency", "stability": "soak"}
QUICK = ("init", "runtime", "load")  # about a minute on the test model
REMOTE_QUICK = ("runtime", "load")  # --url: nothing to start


def measure(kind: str) -> Callable[[Bench, dict[str, Any]], None]:
    module = importlib.import_module(f".{KINDS[kind]}", __name__)
    found: Callable[[Bench, dict[str, Any]], None] = module.measure
    return found
