"""The server's view of `cortex sync`, for /health: state.json read at most every REFRESH_S (a small local
file; /health never waits on more than one such read)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .state import STATE_FILE, SyncState

REFRESH_S = 2.0


@dataclass
class SyncView:
    folder: Path
    _state: SyncState | None = None
    _read_at: float = field(default=-REFRESH_S)

    def report(self, served_sha256: str | None, *, details: bool) -> dict[str, object] | None:
        """None when this device does not sync (no state file)."""
        if time.monotonic() - self._read_at >= REFRESH_S:
            self._read_at = time.monotonic()
            self._state = SyncState.load(self.folder) if (self.folder / STATE_FILE).is_file() else None
        return None if self._state is None else self._state.public(served_sha256, details=details)
