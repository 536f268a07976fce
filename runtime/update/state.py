"""What the update agent last did, in `/data/update/state.json` (on the data partition, so both slots read it;
written whole, by rename): the version installed and waiting to prove itself, the last failure with its version,
and the versions that failed (never tried again). The server reads it for /health."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..ops.durable import write_atomically
from ..ops.text import printable
from ..sync.state import now

STATE_FILE = "state.json"
MAX_STATE = 64 << 10
MAX_MESSAGE = 1000
MAX_FAILED = 32
MAX_TRIES = 3  # a version that never came up (a power cut during its trial, a kernel that cannot boot) is tried again

# The states /health shows: nothing to do, at work, waiting for the reboot into the new slot, or proving it.
CURRENT, DOWNLOADING, INSTALLING, REBOOTING, FAILED = "current", "downloading", "installing", "rebooting", "failed"


@dataclass
class UpdateState:
    state: str = CURRENT
    installed: dict[str, str] | None = None  # version, slot, at: written to the idle slot, on trial
    last_error: dict[str, str | None] | None = None  # version (None: before one was known), message, at
    failed_versions: list[str] = field(default_factory=list)
    unkept: dict[str, int] = field(default_factory=dict)  # version -> trials that ended without its check
    checked_at: str | None = None

    @classmethod
    def load(cls, folder: Path) -> UpdateState:
        """The state on disk; a fresh one when there is none or it cannot be read (the versions that failed are
        then forgotten, and a failed version may be tried once more: it cannot be kept unless it answers)."""
        try:
            with open(folder / STATE_FILE, "rb") as file:
                data = json.loads(file.read(MAX_STATE + 1))
            state = cls(**{key: data[key] for key in ("state", "installed", "last_error", "failed_versions")})
            state.checked_at, state.unkept = data.get("checked_at"), dict(data.get("unkept") or {})
            return state
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return cls()

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o755)
        write_atomically(folder / STATE_FILE, json.dumps(asdict(self), indent=1))

    def fail(self, version: str | None, message: str, *, final: bool = False) -> None:
        """`final`: the version itself failed (it did not answer, or was not kept): never tried again. Otherwise
        (a download cut short, a full disk) the next round tries it again."""
        self.state = FAILED
        self.last_error = {"version": version, "message": printable(message, MAX_MESSAGE), "at": now()}
        if final and version is not None and version not in self.failed_versions:
            self.failed_versions = [*self.failed_versions, version][-MAX_FAILED:]

    def succeed(self) -> None:
        """Running the newest version: nothing pending, no error left to show."""
        self.state, self.installed, self.last_error = CURRENT, None, None

    def public(self, *, details: bool) -> dict[str, object]:
        """For /health: the state; with `details` (a key holder), the version on trial and the last error."""
        shown: dict[str, object] = {"state": self.state}
        if details:
            shown["installing"] = (self.installed or {}).get("version")
            shown["last_error"] = self.last_error
        return shown


class UpdateView:
    """/health's `update`: the state file read again at most every few seconds (a small local file; a burst of
    /health requests reads it once)."""

    FRESH_S = 5.0

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._state = UpdateState()
        self._read_at = -self.FRESH_S

    def __call__(self, *, details: bool) -> dict[str, object]:
        if time.monotonic() - self._read_at >= self.FRESH_S:
            self._state, self._read_at = UpdateState.load(self._folder), time.monotonic()
        return self._state.public(details=details)
