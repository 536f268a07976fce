"""The exit codes of every cortex command and service, declared once (`cortex --help` lists them)."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    FAILURE = 1  # a runtime failure: engine, network, disk, a server that died
    CONFIG = 2  # a bad Cortexfile, env, flags or usage
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
