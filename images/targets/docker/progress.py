"""A readable display of an engine's build stream: one line per step, its output kept back
(shown with --verbose, or as the last lines when the step fails)."""

from __future__ import annotations

import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TextIO

# Docker prints `Step 3/12 : RUN ...`, Podman `[2/3] STEP 3/12: RUN ...` (stage 2 of 3).
STEP = re.compile(r"^(?:\[(?P<stage>\d+/\d+)\] )?(?:Step|STEP) (?P<number>\d+)/(?P<total>\d+) ?: ?(?P<instruction>.*)$")
TAIL_LINES = 25


@dataclass
class Step:
    number: int
    total: int
    instruction: str
    stage: str | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def label(self) -> str:
        where = f"{self.number}/{self.total}"
        return f"stage {self.stage} step {where}" if self.stage else f"step {where}"

    @property
    def title(self) -> str:
        first = self.instruction.split(" && ")[0].strip()
        return first if len(first) <= 100 else first[:97] + "..."


@dataclass
class BuildDisplay:
    out: TextIO = field(default_factory=lambda: sys.stderr)
    verbose: bool = False
    step: Step | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))

    def feed(self, text: str) -> None:
        """One `stream` chunk of the engine's build output (may hold several lines)."""
        for line in text.splitlines():
            self._line(line.rstrip())

    def _line(self, line: str) -> None:
        match = STEP.match(line)
        if match is None:
            if line:
                self.tail.append(line)
                if self.verbose:
                    print(f"      {line}", file=self.out)
            return
        self._close_step()
        self.step = Step(int(match["number"]), int(match["total"]), match["instruction"], match["stage"])
        self.tail.clear()
        print(f"{self.step.label:<22} {self.step.title}", file=self.out, flush=True)

    def _close_step(self) -> None:
        if self.step is not None and self.verbose:
            took = time.monotonic() - self.step.started
            print(f"      done in {took:.1f}s", file=self.out)

    def finish(self) -> None:
        self._close_step()

    def failed_step(self) -> str:
        if self.step is None:
            return "before the first step"
        return f"{self.step.label} `{self.step.title}`"

    def last_output(self) -> str:
        return "\n".join(f"  | {line}" for line in self.tail)
