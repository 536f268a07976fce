"""One bench run: the server under test, the workload, the progress line, and the results as they come."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .appliance import Appliance, Launch, Started, evict_from_page_cache
from .client import Client, Completion
from .errors import BenchError, ServerError, Unreachable
from .memory import peak, resident
from .workload import Workload


@dataclass(frozen=True)
class Options:
    rounds: int = 3
    streams: tuple[int, ...] = (1, 2, 4, 8)
    duration_s: float = 60.0


class Progress:
    """One line on stderr, rewritten in place on a terminal, a line per step otherwise."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.live = self.out.isatty()

    def __call__(self, kind: str, text: str) -> None:
        line = f"bench: {kind}: {text}"
        if self.live:
            self.out.write(f"\r\x1b[2K{line}")
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def done(self) -> None:
        if self.live:
            self.out.write("\r\x1b[2K")
            self.out.flush()


@dataclass
class Bench:
    """The server being measured: started here from a Cortexfile (`launch`), or already running at `client`."""

    workload: Workload
    options: Options
    progress: Progress
    client: Client | None = None
    launch: Launch | None = None
    api_key: str | None = None
    pid: int | None = None  # a local server's process, for memory (--pid, or the appliance started here)
    model_file: Path | None = None
    other_models: Sequence[str] = ()
    origin: float = field(default_factory=time.perf_counter)
    appliance: Appliance | None = None

    @property
    def server(self) -> Client:
        if self.client is None:
            raise BenchError("no server is running")
        return self.client

    def start(self, *, cold: bool = False) -> tuple[Started, str | None]:
        """(Re)start the appliance; with `cold`, its model file leaves the page cache first."""
        if self.launch is None:
            raise BenchError("init measures an appliance started here: use cortex bench -f, not --url")
        self.stop()
        how = evict_from_page_cache(self.model_file) if cold and self.model_file else None
        self.appliance = Appliance(self.launch, self.api_key)
        self.client, self.pid = self.appliance.client, self.appliance.pid
        return self.appliance.wait_ready(), how

    def stop(self) -> None:
        if self.appliance is not None:
            self.appliance.stop()
            self.appliance = self.client = self.pid = None

    def current_pid(self) -> int | None:
        return self.pid

    def resident(self) -> int | None:
        return None if self.pid is None else resident(self.pid)

    def peak(self) -> int | None:
        return None if self.pid is None else peak(self.pid)

    def chat(self, body: dict[str, Any]) -> Completion:
        try:
            return self.server.chat(body)
        except Unreachable as exc:
            raise self._explained(exc) from None

    def concurrently(self, bodies: Sequence[dict[str, Any]]) -> tuple[float, list[Completion | BenchError]]:
        """Send every body at once, each on its own thread; (wall seconds, outcome per body)."""
        outcomes: list[Completion | BenchError] = [BenchError("not finished")] * len(bodies)
        gate = threading.Barrier(len(bodies) + 1)

        def one(index: int, body: dict[str, Any]) -> None:
            gate.wait()
            try:
                outcomes[index] = self.server.chat(body)
            except BenchError as exc:
                outcomes[index] = exc

        threads = [threading.Thread(target=one, args=item, daemon=True) for item in enumerate(bodies)]
        for thread in threads:
            thread.start()
        started = time.perf_counter()  # before the gate opens: every request is sent after it
        gate.wait()
        for thread in threads:
            while thread.is_alive():  # short joins, so that Ctrl-C reaches the main thread
                thread.join(0.2)
        return time.perf_counter() - started, outcomes

    def server_died(self) -> bool:
        return self.appliance is not None and self.appliance.process.poll() is not None

    def _explained(self, exc: Unreachable) -> BenchError:
        if self.server_died() and self.appliance is not None:
            return BenchError(f"the appliance stopped during the run: {self.appliance.log_tail()}")
        return exc


def is_rejection(outcome: object) -> bool:
    return isinstance(outcome, ServerError) and outcome.status == 429
