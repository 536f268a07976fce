"""What `cortex sync` last did, in `<data>-sync/state.json` (written whole, by rename): the commit applied and
the sha256 of the file it wrote (so the server can tell whether it serves that commit), the last fetch, and the
last refusal or failure with its commit. The server reads it for /health."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..ops.durable import write_atomically

STATE_FILE = "state.json"
MAX_STATE = 64 << 10
MAX_MESSAGE = 4000


class StateUnreadable(Exception):
    """state.json exists and cannot be read: the applied commit, the anchor against rollbacks, is unknown."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class SyncState:
    repository: str = ""
    branch: str = ""
    applied: dict[str, str] | None = None  # commit, file_sha256, at
    fetched: dict[str, str] | None = None  # commit, at
    error: dict[str, str | None] | None = None  # commit (None: before one was known), message, at
    checked_at: str | None = None

    @classmethod
    def load(cls, folder: Path) -> SyncState:
        """The state on disk, a fresh one when there is none; StateUnreadable when it exists but cannot be read
        (fail closed: without the applied commit, an older signed commit could be applied again)."""
        path = folder / STATE_FILE
        if not path.exists():
            return cls()
        try:
            with open(path, "rb") as file:
                data = json.loads(file.read(MAX_STATE + 1))
            known = {key: data[key] for key in ("repository", "branch", "applied", "fetched", "error", "checked_at")}
            return cls(**known)
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            raise StateUnreadable(
                f"{path} cannot be read: sync applies nothing until it is repaired (or removed, "
                "which makes the next signed tip the new anchor)"
            ) from None

    def save(self, folder: Path) -> None:
        write_atomically(folder / STATE_FILE, json.dumps(asdict(self), indent=1))

    def public(self, served_sha256: str | None, *, details: bool) -> dict[str, object]:
        """For /health: the commit served (only when the file the server loaded is the one sync wrote), the
        repository and branch followed, and the last refusal (its message only with `details`)."""
        applied = self.applied or {}
        serving = applied.get("commit") if served_sha256 and applied.get("file_sha256") == served_sha256 else None
        error: dict[str, object] | None = None
        if self.error is not None:
            error = {"commit": self.error.get("commit"), "at": self.error.get("at")}  # not `refused`: internal
            if details:
                error["message"] = self.error.get("message")
        return {"repository": self.repository, "branch": self.branch, "commit": serving,
                "applied_at": applied.get("at"), "checked_at": self.checked_at, "last_error": error}  # fmt: skip
