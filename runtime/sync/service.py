"""`cortex sync`: rounds every `sync.interval_s` until SIGTERM (or one, with --once). Each round reads the live
Cortexfile again: a signed commit may change what is followed, and how often."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from menlo_cortex.cortexfile.data_folder import data_dir, sync_dir
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.loader import Inputs, Resolved, read, resolve

from menlo_cortex.exits import Exit

from .round import Target, sync_round

log = logging.getLogger("cortex.sync")


def work_folder(resolved: Resolved) -> Path:
    """systemd's StateDirectory when the unit gives one (a commit that moves data.path does not move the
    anchor against rollbacks), else the folder beside the data folder."""
    given = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(given) if given else sync_dir(data_dir(resolved.config, resolved.inputs.environ))


def run_sync(resolved: Resolved, *, once: bool) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)  # the journal, on a device
    if resolved.config.sync.repository is None:
        log.error("sync: %s has no sync.repository: nothing to follow", resolved.path)
        return Exit.CONFIG
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    inputs = resolved.inputs
    while True:
        current = _reread(inputs) or resolved  # a live file that no longer loads: the last one's settings
        done = sync_round(current.config.sync, Target(inputs, work_folder(current)))
        if once:
            return Exit.OK if done else Exit.FAILURE
        if current.config.sync.repository is None:
            log.warning("sync: the applied Cortexfile has no sync.repository: following stops")
            return Exit.OK
        if stop.wait(current.config.sync.interval_s):
            return Exit.OK


def _reread(inputs: Inputs) -> Resolved | None:
    try:
        return resolve(read(inputs), inputs.format_defaults)
    except ConfigError:
        return None
