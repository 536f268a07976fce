"""What can stop a bench run, each with the exit code the CLI lists."""

from __future__ import annotations

from menlo_cortex.exits import Exit


class BenchError(Exception):
    """A failure worth one line to the user; `exit_code` as the CLI lists them."""

    exit_code = Exit.FAILURE


class UsageError(BenchError):
    exit_code = Exit.CONFIG


class Unreachable(BenchError):
    """No HTTP answer at all: refused, reset, timed out."""


class ServerError(BenchError):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        self.status = status
