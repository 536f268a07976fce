"""One round of `cortex sync`: fetch, and apply the branch's tip only when every check passes."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.loader import Inputs
from menlo_cortex.cortexfile.schema.sync import Rewrite, Sync

from ..ops.durable import fsync_dir
from ..reload.check import load_candidate
from ..reload.state import describe
from ..reload.watch import content_hash
from .binding import Binding, Unbound, applied_fresh, committed_at
from .credentials import forget, with_credentials
from .git import Git, GitError
from .state import MAX_MESSAGE, StateUnreadable, SyncState, now
from .trust import verify

log = logging.getLogger("cortex.sync")


class Refused(Exception):
    """The tip cannot be applied; the message says why and names the commit."""


@dataclass(frozen=True)
class Target:
    """The live Cortexfile, loaded the way the server loads it (its env snapshot and format defaults)."""

    inputs: Inputs
    work: Path  # <data>-sync: the mirror, the keyring, state.json

    @property
    def path(self) -> Path:
        return self.inputs.path


def sync_round(settings: Sync, target: Target) -> bool:
    """True when the device serves (or now applied) the branch's tip; False after a refusal or a failure,
    recorded in state.json and logged once per new cause. A tip refused once is not tried again while the
    device's own Cortexfile stays the same (no verification and no write to /etc/cortex every interval): a new
    commit is, and so is the same one after a local edit (on_rewrite: follow, a key added)."""
    try:
        state = SyncState.load(target.work)
    except StateUnreadable as exc:
        log.error("sync: %s", exc)
        return False
    state.repository, state.branch, state.checked_at = settings.repository or "", settings.branch, now()
    tip: str | None = None
    try:
        git = _git(settings, target.work)
        git.ensure_mirror()
        git.prune_above(2 * (settings.max_fetch_mb << 20))  # what refused rounds brought does not pile up
        tip = git.fetch(str(settings.repository), settings.branch, settings.max_fetch_mb << 20)
        state.fetched = {"commit": tip, "at": now()}
        decided_by = content_hash(target.path) or ""
        if state.error and state.error.get("commit") == tip and state.error.get("refused") == decided_by:
            return False
        if not state.applied or state.applied.get("commit") != tip:
            _apply(settings, target, git, tip, state)
        else:
            _still_fresh(state.applied)
        state.error = None
        return True
    except Refused as exc:
        _record_failure(state, tip, str(exc), refused=content_hash(target.path) or "")
        return False
    except GitError as exc:
        _record_failure(state, tip, str(exc))
        return False
    except Exception as exc:  # a bug or a full disk: reported, and the next round tries again
        reason = _reason(exc)
        _record_failure(state, tip, f"sync failed ({type(exc).__name__}){': ' + reason if reason else ''}")
        return False
    finally:
        forget(target.work)
        _save(state, target.work)


def _git(settings: Sync, work: Path) -> Git:
    """The mirror's git with the repository's credentials; with `ca_certificates`, https checks the server
    against those (written where git reads them) instead of the system's bundle."""
    work.mkdir(parents=True, exist_ok=True)
    git = with_credentials(Git(work / "mirror.git"), settings, work)
    if settings.ca_certificates is None:
        return git
    bundle = work / "ca.pem"
    _write(bundle, settings.ca_certificates.encode(), like=None)
    return git.with_config(f"http.sslCAInfo={bundle}")


def _apply(settings: Sync, target: Target, git: Git, tip: str, state: SyncState) -> None:
    applied = state.applied or {}
    rewritten = bool(applied) and not git.descends(tip, applied["commit"])
    if rewritten and settings.on_rewrite is Rewrite.refuse:
        raise Refused(f"commit {tip[:12]} does not descend from the applied {applied['commit'][:12]}: the branch "
                      "was rewritten (sync.on_rewrite: refuse)")  # fmt: skip
    try:  # what the tip holds decides these: refusals of this tip, not failures to retry
        verify(git, tip, settings.trusted_keys, target.work / "trust")
        binding = Binding.read(git, tip)  # only now: the trailers are the signer's word
        binding.check(settings, datetime.now(UTC))
        if rewritten:
            binding.check_later_than(applied["commit"], committed_at(applied, git))
        content = git.file_at(tip, settings.path)
    except (GitError, Unbound) as exc:
        raise Refused(str(exc)) from None
    _swap_in(target, content, f"{settings.path}@{tip[:12]}")
    git.pin(tip)
    state.applied = {"commit": tip, "file_sha256": hashlib.sha256(content).hexdigest(), "at": now()}
    state.applied |= binding.record()
    log.info("sync: applied commit %s (%s)", tip, settings.path)


def _still_fresh(applied: dict[str, str]) -> None:
    try:
        applied_fresh(applied, datetime.now(UTC))
    except Unbound as exc:
        raise Refused(str(exc)) from None


def _swap_in(target: Target, content: bytes, where: str) -> None:
    """Checked exactly as a reload would check it, from a staged copy beside the live file (its relative paths
    mean the same), then renamed over it: the server never sees half a file or an unchecked one."""
    staged = target.path.with_name(f".{target.path.name}.sync")
    try:
        _write(staged, content, like=target.path)
        load_candidate(Inputs(staged, target.inputs.environ, target.inputs.flags, target.inputs.format_defaults))
        os.replace(staged, target.path)
        fsync_dir(target.path.parent)
    except ConfigError as exc:  # located in the repository's file, not in the staged copy's name
        located = describe(exc).replace(str(staged), where)
        raise Refused(f"{where}: the Cortexfile would not load:\n{located}") from None
    except OSError as exc:
        raise Refused(f"{where}: cannot write {target.path}: {exc.strerror}") from None
    finally:
        staged.unlink(missing_ok=True)


def _write(path: Path, content: bytes, like: Path | None) -> None:
    """Written with the live file's owner and mode (root:cortex 0640 on a device), flushed to disk."""
    before = like.stat() if like is not None and like.exists() else None
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(descriptor, content)
        if before is not None:
            os.fchmod(descriptor, before.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.fchown(descriptor, before.st_uid, before.st_gid)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _record_failure(state: SyncState, tip: str | None, message: str, *, refused: str | None = None) -> None:
    """`refused`: the live file's digest when the tip itself was refused (skipped until either changes)."""
    message = message[:MAX_MESSAGE]
    previous = state.error or {}
    if previous.get("commit") != tip or previous.get("message") != message:  # log a cause once, not every round
        log.error("sync: %s", message)
    state.error = {"commit": tip, "message": message, "at": now(), "refused": refused}


def _save(state: SyncState, folder: Path) -> None:
    try:
        state.save(folder)
    except OSError as exc:
        log.error("sync: cannot write %s: %s", folder, exc.strerror)


def _reason(exc: Exception) -> str:
    """An OSError's own reason; for anything else only its type (its text may quote what it read)."""
    return exc.strerror or "" if isinstance(exc, OSError) else ""
