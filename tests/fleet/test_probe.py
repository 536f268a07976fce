"""What the fleet view reads from /health, fed what the runtime's own state objects report."""

from __future__ import annotations

import json

from menlo_cortex.fleet.probe import DeviceStatus, _read_health
from menlo_cortex.runtime.reload.state import ReloadState
from menlo_cortex.runtime.sync.state import SyncState

COMMIT = "4b825dc642cb6eb9a060e54bf8d69288fbad7904"


class Synced:
    def __init__(self, state: SyncState) -> None:
        self.state = state

    def report(self, served_sha256: str | None, *, details: bool) -> dict[str, object] | None:
        return self.state.public(served_sha256, details=details)


def test_the_commit_served_and_the_last_errors_reach_the_row() -> None:
    sync = SyncState(
        repository="https://git.example/fleet.git",
        branch="main",
        applied={"commit": COMMIT, "file_sha256": "ab" * 32, "at": "2026-12-05T03:00:00+00:00"},
        error={"commit": "f" * 40, "message": "commit ffff is not signed by a trusted key", "at": "2026-12-05"},
    )
    reload = ReloadState(generation=4, config_hash="h", applied_at=0.0, file_sha256="ab" * 32, sync=Synced(sync))
    reload.failed("Cortexfile.yaml:3:5: server.port: input should be less than or equal to 65535")
    for details, said in (
        (True, "commit ffff is not signed by a trusted key"),
        (False, "(its text is for key holders)"),
    ):
        status = DeviceStatus("a", "http://a")
        health = json.loads(json.dumps({"status": "ok", "config": reload.report(details=details)}))
        _read_health(status, health)
        assert (status.commit, status.generation) == (COMMIT, 4)
        assert status.errors[1] == f"sync: {said}"
        assert status.errors[0].startswith("config: ")
