"""What ties a signed commit to the device that applies it. A trusted key's signature says who made a commit, not
which branch it belongs to or until when it holds: a hostile git host could serve a signed commit of an unmerged
branch, an older one, or withhold newer ones. So the signed message says it, in trailers:

    Cortex-Branch: main                      one per branch the commit is meant for; required
    Cortex-Not-After: 2027-01-31T00:00:00Z   optional (sync.require_not_after makes it required)

and a rewrite (on_rewrite: follow) is applied only when committed later than the applied commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from menlo_cortex.cortexfile.schema.sync import Sync

from ..ops.text import printable
from .git import Git, GitError

BRANCH = "Cortex-Branch"
NOT_AFTER = "Cortex-Not-After"


class Unbound(Exception):
    """The commit is not bound to this branch, or no longer holds; the message names it."""


@dataclass(frozen=True)
class Binding:
    """What a signed commit says about itself."""

    commit: str
    committed_at: int  # the committer time, seconds since the epoch
    branches: tuple[str, ...]
    not_after: datetime | None

    @classmethod
    def read(cls, git: Git, commit: str) -> Binding:
        committed_at, (branches, not_after) = git.trailers(commit, (BRANCH, NOT_AFTER))
        return cls(commit, committed_at, tuple(branches), _not_after(commit, not_after))

    def check(self, settings: Sync, now: datetime) -> None:
        """Unbound when the commit is not signed for the followed branch, or has expired (or has no expiry and
        the Cortexfile requires one)."""
        if settings.branch not in self.branches:
            named = f" (it names {printable(', '.join(self.branches), 200)})" if self.branches else ""
            raise Unbound(f"commit {self.commit[:12]} is not signed for branch {settings.branch}: its message has no "
                          f"`{BRANCH}: {settings.branch}` trailer{named}")  # fmt: skip
        if self.not_after is None and settings.require_not_after:
            raise Unbound(f"commit {self.commit[:12]} has no `{NOT_AFTER}:` trailer (sync.require_not_after)")
        self.check_fresh(now)

    def check_fresh(self, now: datetime) -> None:
        if self.not_after is not None and self.not_after <= now:
            raise Unbound(f"commit {self.commit[:12]} expired at {_iso(self.not_after)} (its {NOT_AFTER})")

    def check_later_than(self, applied: str, applied_at: int | None) -> None:
        """A rewrite may move forward in time only: an older signed commit is a rollback, which is a new commit."""
        if applied_at is None or self.committed_at <= applied_at:
            raise Unbound(f"commit {self.commit[:12]} is not committed later than the applied {applied[:12]}: an "
                          "older signed commit is not applied again (revert in a new commit instead)")  # fmt: skip

    def record(self) -> dict[str, str]:
        """For state.json's `applied`."""
        facts = {"committed_at": str(self.committed_at)}
        return facts | ({"not_after": _iso(self.not_after)} if self.not_after else {})


def applied_fresh(applied: dict[str, str], now: datetime) -> None:
    """Unbound once the applied commit's Cortex-Not-After has passed and the branch offers nothing newer: the
    repository is silent or withholds commits (the device keeps serving; this is what /health reports)."""
    expires = applied.get("not_after")
    if expires and datetime.fromisoformat(expires) <= now:
        raise Unbound(f"the applied commit {applied.get('commit', '')[:12]} expired at {expires} and the branch "
                      "offers nothing newer: the repository may be withholding commits")  # fmt: skip


def committed_at(applied: dict[str, str], git: Git) -> int | None:
    """The applied commit's committer time: recorded when it was applied, else read from the mirror."""
    if applied.get("committed_at", "").isdigit():
        return int(applied["committed_at"])
    try:
        return git.trailers(applied["commit"], ())[0]
    except (GitError, ValueError):  # not in the mirror any more: no rewrite can be shown to be later
        return None


def _not_after(commit: str, values: list[str]) -> datetime | None:
    if not values:
        return None
    if len(values) > 1:
        raise Unbound(f"commit {commit[:12]} has {len(values)} `{NOT_AFTER}:` trailers; give one")
    try:
        parsed = datetime.fromisoformat(values[0])
    except ValueError:
        parsed = None
    if parsed is None or (parsed.tzinfo is None and len(values[0]) != len("2027-01-31")):
        raise Unbound(f"commit {commit[:12]}: `{NOT_AFTER}: {printable(values[0], 60)}` is not a date "
                      "(2027-01-31) or a time with its zone (2027-01-31T12:00:00Z)")  # fmt: skip
    return parsed if parsed.tzinfo else datetime.combine(date.fromisoformat(values[0]), datetime.min.time(), UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
