"""Run the chosen kinds in order and always end with a report: complete, or marked incomplete with the reason
and every figure measured until then."""

from __future__ import annotations

import contextlib
import datetime
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from menlo_cortex.exits import Exit

from .errors import BenchError
from .host import host_facts
from .kinds import measure
from .memory import Sampler
from .session import Bench

REPORT_FORMAT = 1


def run_kinds(
    bench: Bench, kinds: Sequence[str], target: dict[str, Any], *, debug: bool = False
) -> tuple[dict[str, Any], int]:
    """(report, exit code): 0 complete, the error's code when one stopped it, 130 on Ctrl-C."""
    report = _header(bench, kinds, target)
    sampler = Sampler(bench.current_pid, bench.origin).start()
    code = 0
    try:
        if bench.launch is not None and "init" not in kinds:
            bench.progress("start", "cortex start")
            bench.start()
        for kind in kinds:
            measure(kind)(bench, report["results"].setdefault(kind, {}))
    except BenchError as exc:
        report["stopped"], code = str(exc), exc.exit_code
    except KeyboardInterrupt:
        report["stopped"], code = "interrupted (Ctrl-C)", Exit.INTERRUPTED
    except Exception as exc:  # a bug of ours: what was measured is still worth keeping
        report["stopped"], code = f"internal error ({type(exc).__name__}): run with --debug and report it", 1
        if debug:
            raise
    finally:
        sampler.stop()
        report["memory"] = {"peak_bytes": bench.peak(), "samples": [list(s) for s in sampler.samples]}
        with _sigint_ignored():  # a second Ctrl-C must not leave the appliance running
            bench.stop()
    report["complete"] = code == 0
    report["finished_at"] = _now()
    report["wall_s"] = time.perf_counter() - bench.origin
    return report, code


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _header(bench: Bench, kinds: Sequence[str], target: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": REPORT_FORMAT,
        "complete": False,
        "stopped": None,
        "started_at": _now(),
        "kinds": list(kinds),
        "target": target,
        "host": host_facts(),
        "workload": asdict(bench.workload) | asdict(bench.options),
        "results": {},
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
