"""The generation being served and the last reload error: for /health, /metrics and the logs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from menlo_cortex.cortexfile.errors import ConfigError

from ..ops.metrics import Metrics


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


@dataclass
class ReloadError:
    message: str  # every diagnostic, one per line: FILE:LINE:COL: key: message
    at: float


class SyncReport(Protocol):
    def report(self, served_sha256: str | None, *, details: bool) -> dict[str, object] | None: ...


@dataclass
class ReloadState:
    generation: int
    config_hash: str
    applied_at: float
    reloads: int = 0
    failures: int = 0
    last_error: ReloadError | None = None
    file_sha256: str | None = None  # of the Cortexfile's bytes this generation was loaded from
    sync: SyncReport | None = None  # `cortex sync`'s state, when the device follows a repository

    def applied(self, config_hash: str, file_sha256: str | None = None) -> None:
        self.generation += 1
        self.reloads += 1
        self.config_hash, self.applied_at, self.file_sha256 = config_hash, time.time(), file_sha256
        self.last_error = None  # the file on disk is what is served again

    def failed(self, message: str) -> None:
        self.failures += 1
        self.last_error = ReloadError(message, time.time())

    def export(self, metrics: Metrics) -> None:
        metrics.set("cortex_config_generation", self.generation)
        metrics.set("cortex_config_reloads_total", self.reloads)
        metrics.set("cortex_config_reload_failures_total", self.failures)

    def report(self, *, details: bool) -> dict[str, object]:
        """For /health: the error's text (it names files and keys) only when `details`."""
        error: dict[str, object] | None = None
        if self.last_error is not None:
            error = {"at": _iso(self.last_error.at)}
            if details:
                error["message"] = self.last_error.message
        report: dict[str, object] = {
            "generation": self.generation,
            "hash": self.config_hash,
            "applied_at": _iso(self.applied_at),
            "reloads": self.reloads,
            "reload_failures": self.failures,
            "last_reload_error": error,
        }
        synced = self.sync.report(self.file_sha256, details=details) if self.sync else None
        return report | ({"sync": synced} if synced is not None else {})


def describe(error: ConfigError) -> str:
    return "\n".join(str(diagnostic) for diagnostic in error.diagnostics)
