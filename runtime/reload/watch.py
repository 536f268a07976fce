"""Watch the Cortexfile and the files it names (API key files, TLS cert and key) for changes.

Folders are watched, not files: an editor's atomic rename and a Kubernetes ConfigMap's `..data`
symlink swap replace the file, and a watch on the file itself would go deaf after the first one.
Events only say "look again": whether anything changed is decided by content hashes (`fingerprint`),
so a touch is no change and a burst of writes is one. A file that is a mount point of its own (a
single-file bind mount) never sends events to its folder, so that case is polled.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.cortexfile.schema.reload import Polling, Reload
from watchfiles import Change, awatch

from ..ops.mounts import mount_points

MAX_BATCH_MS = 1000  # a change that never goes quiet is still reloaded at least this often
SAFETY_CHECK_MS = 5000
log = logging.getLogger("cortex.reload")

Fingerprint = tuple[tuple[str, str | None], ...]


def referenced_files(config: Cortexfile, cortexfile: Path) -> tuple[Path, ...]:
    """The Cortexfile and every small file it names that a reload must follow (never the models)."""
    server = config.server
    named = [server.tls.cert, server.tls.key, server.auth.api_key_file]
    named += [Path(secret.target) for secret in server.auth.api_keys if secret.kind == "file"]
    files = [cortexfile.absolute(), *(path.absolute() for path in named if path is not None)]
    return tuple(dict.fromkeys(files))


def fingerprint(files: Iterable[Path]) -> Fingerprint:
    """sha256 of each file's content (None when missing or unreadable), in a stable order."""
    return tuple((str(path), content_hash(path)) for path in files)


def content_hash(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def watched_folders(files: Iterable[Path]) -> tuple[Path, ...]:
    """Each file's folder as named (where a symlink swap happens) and its real folder (where edits land)."""
    folders: list[Path] = []
    for path in files:
        folders += [path.parent, path.resolve().parent]
    return tuple(folder for folder in dict.fromkeys(folders) if folder.is_dir())


def relevant_to(files: Iterable[Path]) -> Callable[[Change, str], bool]:
    """Events on the watched names (as named or real) or on `..data`-style entries (ConfigMap swaps);
    not on other files of the folder, such as a log file written beside the Cortexfile."""
    names = {str(path) for file in files for path in (file, file.resolve())}

    def relevant(change: Change, path: str) -> bool:
        return path in names or Path(path).name.startswith("..")

    return relevant


def needs_polling(files: Iterable[Path], mode: Polling, mounts: frozenset[str] | None = None) -> bool:
    if mode is not Polling.auto:
        return mode is Polling.always
    mounts = mount_points() if mounts is None else mounts
    return any(str(path.resolve()) in mounts for path in files)


@dataclass(frozen=True)
class WatchSettings:
    polling: Polling = Polling.auto
    poll_interval_ms: int = 300
    debounce_ms: int = 20

    @classmethod
    def of(cls, reload: Reload) -> WatchSettings:
        return cls(reload.polling, reload.poll_interval_ms, reload.debounce_ms)


class FolderWatcher:
    """Calls `on_event()` after each quiet burst of file events in the folders of the watched files, and
    at each poll interval when polling (the caller compares contents, so extra calls cost one hash each).

    `run()` watches until cancelled; `watch(files)` changes what is watched (the watch restarts).
    """

    def __init__(self, files: Iterable[Path], settings: WatchSettings, on_event: Callable[[], None]) -> None:
        self._files = tuple(files)
        self._settings = settings
        self._on_event = on_event
        self._stop = asyncio.Event()
        self._closed = False
        self.polling = False
        logging.getLogger("watchfiles").setLevel(logging.WARNING)  # our reload lines say what changed

    def watch(self, files: Iterable[Path], settings: WatchSettings | None = None) -> None:
        files, settings = tuple(files), settings or self._settings
        if (files, settings) != (self._files, self._settings):
            self._files, self._settings = files, settings
            self._stop.set()  # ends the current awatch; run() starts the next one with the new folders

    def close(self) -> None:
        """End `run()` within one debounce step (cancelling it instead can take watchfiles seconds)."""
        self._closed = True
        self._stop.set()

    async def run(self) -> None:
        while not self._closed:
            self._stop = asyncio.Event()
            try:
                await self._watch_once()
            except (OSError, RuntimeError) as exc:  # e.g. a watched folder vanished: try again shortly
                log.warning("cannot watch %s (%s); retrying", ", ".join(map(str, self._files)), exc)
                await asyncio.sleep(self._settings.poll_interval_ms / 1000)
            if not self._closed:
                self._on_event()  # what changed while no watch was running

    async def _watch_once(self) -> None:
        folders = watched_folders(self._files)
        settings = self._settings
        self.polling = needs_polling(self._files, settings.polling)
        log.debug("watching %s (%s)", ", ".join(map(str, folders)), "polling" if self.polling else "events")
        changes = awatch(
            *folders,
            watch_filter=relevant_to(self._files),
            debounce=max(MAX_BATCH_MS, settings.debounce_ms),
            step=settings.debounce_ms,
            stop_event=self._stop,
            force_polling=self.polling,
            poll_delay_ms=settings.poll_interval_ms,
            # Polling sees mtimes to the second only, so two writes in one second look like one: every
            # poll interval the contents are compared too. With events, the same check runs now and then
            # in case the kernel dropped some (inotify queue overflow).
            rust_timeout=settings.poll_interval_ms if self.polling else SAFETY_CHECK_MS,
            yield_on_timeout=True,
            recursive=False,
        )
        async for _ in changes:
            self._on_event()
