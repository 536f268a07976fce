"""Responses kept in `<data>/cortex.db`: each row is one response (its body as the client saw it, and the input
items it answered), its owner (the digest of the API key that made it) and the response it continued. A
conversation is the chain of rows up to its first; an owner reads and continues only its own rows. Every call
is blocking SQLite work: callers on the event loop run it in a thread."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from menlo_cortex.cortexfile.schema.paths import Conversations

from ..ops.database import database_path, transaction

DAY_S = 86_400
MAX_CHAIN = 1024  # responses in one conversation: each adds at least two chat messages, and a chat holds 2048
MAX_CONVERSATION_BYTES = 4 * 1024 * 1024  # read for one request: far more text than any model's context holds
COLUMNS = "id, owner, created_at, previous_id, body, input_items"
ROW = "id, owner, created_at, previous_id, bytes, body, input_items"


@dataclass(frozen=True)
class Retention:
    days: int
    max_bytes: int

    @classmethod
    def of(cls, settings: Conversations) -> Retention:
        """The Cortexfile's `data.conversations` limits."""
        return cls(settings.retention_days, settings.max_mb * 1024 * 1024)


@dataclass(frozen=True)
class StoredResponse:
    id: str
    owner: str
    created_at: float
    previous_id: str | None
    body: dict[str, Any]  # the response object, as GET /v1/responses/{id} returns it
    input_items: list[dict[str, Any]]  # the items this response answered (not its conversation's earlier ones)

    @property
    def output_items(self) -> list[dict[str, Any]]:
        output: list[dict[str, Any]] = self.body.get("output") or []
        return output


class ConversationTooLong(Exception):
    """More responses or bytes than one conversation continued here may hold (MAX_CHAIN, MAX_CONVERSATION_BYTES)."""


class BrokenConversation(Exception):
    """An earlier response of the conversation is no longer stored (deleted, or past the retention)."""

    def __init__(self, missing: str) -> None:
        super().__init__(missing)
        self.missing = missing


class ConversationStore:
    def __init__(self, data: Path, retention: Retention) -> None:
        self.path = database_path(data)
        self.retention = retention

    def add(self, response: StoredResponse) -> bool:
        """Keep a response, then apply the retention (age, then size), all in one transaction; False when it is
        larger than the whole retention allows, and so not kept."""
        body, items = _dumps(response.body), _dumps(response.input_items)
        size = len(body.encode()) + len(items.encode())
        if size > self.retention.max_bytes:
            return False
        row = (response.id, response.owner, response.created_at, response.previous_id, size, body, items)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with transaction(self.path) as db:
            db.execute(f"INSERT INTO responses ({ROW}) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            _prune(db, self.retention, time.time())
        return True

    def get(self, response_id: str, owner: str) -> StoredResponse | None:
        if not self.path.exists():
            return None
        with transaction(self.path, write=False) as db:
            found = db.execute(f"SELECT {COLUMNS} FROM responses WHERE id = ? AND owner = ?", (response_id, owner))
            row = found.fetchone()
        return None if row is None else _stored(row)

    def delete(self, response_id: str, owner: str) -> bool:
        if not self.path.exists():
            return False
        with transaction(self.path) as db:
            return db.execute("DELETE FROM responses WHERE id = ? AND owner = ?", (response_id, owner)).rowcount > 0

    def conversation(self, response_id: str, owner: str) -> list[StoredResponse]:
        """The chain that ends at `response_id`, its first response first; [] when that one is not stored
        for this owner. BrokenConversation when an earlier one is gone; ConversationTooLong past the limits,
        found before any body is read."""
        if not self.path.exists():
            return []
        with transaction(self.path, write=False) as db:
            links = db.execute(_CHAIN, (response_id, owner, owner, MAX_CHAIN, MAX_CONVERSATION_BYTES)).fetchall()
            if links and links[0][1] is not None:
                _, previous, depth, total = links[0]
                if depth >= MAX_CHAIN or total >= MAX_CONVERSATION_BYTES:
                    raise ConversationTooLong()
                raise BrokenConversation(previous)
            return _bodies(db, [link[0] for link in links])

    def conversations(self) -> Iterator[list[StoredResponse]]:
        """Every stored conversation, whole (each chain up to a response nothing continued), oldest first;
        one whose start is gone is given from its first response still stored."""
        if not self.path.exists():
            return
        with transaction(self.path, write=False) as db:
            last = db.execute(_LAST_OF_EACH).fetchall()
        for response_id, owner in last:
            with transaction(self.path, write=False) as db:
                links = db.execute(_CHAIN, (response_id, owner, owner, MAX_CHAIN + 1, 2**62)).fetchall()
                conversation = _bodies(db, [link[0] for link in links])
            yield conversation

    def prune(self, older_than_days: float | None = None) -> int:
        """Apply the retention now (with `older_than_days` instead of its age limit); the rows deleted."""
        if not self.path.exists():
            return 0
        with transaction(self.path) as db:
            before = db.execute("SELECT count(*) FROM responses").fetchone()[0]
            _prune(db, self.retention, time.time(), older_than_days)
            return int(before - db.execute("SELECT count(*) FROM responses").fetchone()[0])


_CHAIN = """
    WITH RECURSIVE chain(id, previous_id, depth, total) AS (
        SELECT id, previous_id, 1, bytes FROM responses WHERE id = ? AND owner = ?
        UNION ALL
        SELECT responses.id, responses.previous_id, chain.depth + 1, chain.total + responses.bytes
        FROM responses JOIN chain ON responses.id = chain.previous_id
        WHERE responses.owner = ? AND chain.depth < ? AND chain.total < ?
    )
    SELECT id, previous_id, depth, total FROM chain ORDER BY depth DESC
"""
_LAST_OF_EACH = """
    SELECT id, owner FROM responses AS last
    WHERE NOT EXISTS (SELECT 1 FROM responses AS next WHERE next.previous_id = last.id)
    ORDER BY created_at, rowid
"""


def _prune(db: Any, retention: Retention, now: float, older_than_days: float | None = None) -> None:
    """Past the age limit: gone. Past the size: the oldest of whoever keeps the most go first, so that one key
    storing much pushes out its own responses, not everyone else's."""
    days = retention.days if older_than_days is None else older_than_days
    db.execute("DELETE FROM responses WHERE created_at < ?", (now - days * DAY_S,))
    excess = db.execute("SELECT total(bytes) FROM responses").fetchone()[0] - retention.max_bytes
    while excess > 0:
        owner = db.execute("SELECT owner FROM responses GROUP BY owner ORDER BY total(bytes) DESC LIMIT 1").fetchone()
        doomed: list[tuple[str]] = []
        query = "SELECT id, bytes FROM responses WHERE owner = ? ORDER BY created_at, rowid"
        for response_id, size in db.execute(query, owner):
            if excess <= 0:
                break
            doomed.append((response_id,))
            excess -= size
        db.executemany("DELETE FROM responses WHERE id = ?", doomed)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _bodies(db: Any, ids: list[str]) -> list[StoredResponse]:
    """The responses of `ids`, in that order."""
    found = {}
    for row in db.execute(f"SELECT {COLUMNS} FROM responses WHERE id IN (SELECT value FROM json_each(?))",
                          (json.dumps(ids),)):  # fmt: skip
        found[row[0]] = _stored(row)
    return [found[response_id] for response_id in ids if response_id in found]


def _stored(row: tuple[Any, ...]) -> StoredResponse:
    response_id, owner, created_at, previous_id, body, items = row
    return StoredResponse(response_id, owner, float(created_at), previous_id, json.loads(body), json.loads(items))
