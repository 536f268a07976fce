"""`server.reload:` following edits of the Cortexfile (and the files it names) while serving."""

from __future__ import annotations

from enum import StrEnum

from .base import Applies, Section, setting


class Polling(StrEnum):
    auto = "auto"
    always = "always"
    never = "never"


class Reload(Section):
    applies = Applies.watcher
    enabled: bool = setting(True, "Apply edits of the Cortexfile and of the files it names without a restart.")
    polling: Polling = setting(
        Polling.auto,
        "Look for changes by polling instead of file events: `auto` polls only where events cannot work "
        "(a file that is a mount point of its own, e.g. a single-file bind mount).",
    )
    poll_interval_ms: int = setting(300, "Time between two polls, when polling.", ge=50, le=60_000)
    debounce_ms: int = setting(
        20,
        "Quiet time after the last change before reloading (the reload starts one to two times this after the "
        "last write); a burst of writes is one reload.",
        ge=1,
        le=10_000,
    )
