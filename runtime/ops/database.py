"""`<data>/cortex.db` (SQLite): one file for what a device keeps (bench runs, stored responses), one schema
history for all of it, versioned by `PRAGMA user_version`, so that every writer agrees on what the file holds."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

DATABASE = "cortex.db"
MIGRATIONS = {  # one script per version, applied with its user_version in one transaction
    1: """
        CREATE TABLE IF NOT EXISTS bench_runs (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            label TEXT NOT NULL,
            model TEXT NOT NULL,
            complete INTEGER NOT NULL,
            report TEXT NOT NULL
        )
    """,
    2: """
        CREATE TABLE IF NOT EXISTS responses (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            created_at REAL NOT NULL,
            previous_id TEXT,
            bytes INTEGER NOT NULL,
            body TEXT NOT NULL,
            input_items TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS responses_by_age ON responses (created_at, bytes);
        CREATE INDEX IF NOT EXISTS responses_by_owner ON responses (owner, created_at, bytes);
        CREATE INDEX IF NOT EXISTS responses_by_previous ON responses (previous_id)
    """,
}
SCHEMA_VERSION = max(MIGRATIONS)


class DatabaseError(Exception):
    """The database cannot be opened, read or written; the message names the file."""


def database_path(data: Path) -> Path:
    return data / DATABASE


@contextlib.contextmanager
def transaction(path: Path, *, write: bool = True) -> Iterator[sqlite3.Connection]:
    """A connection to the (created or upgraded) database inside one transaction, committed when the block
    ends, rolled back when it raises. The file is created private (0600), and never opened through a link:
    `cortex data` may run as root on a folder the service user owns."""
    db = _connect(path)
    try:
        if int(db.execute("PRAGMA user_version").fetchone()[0]) != SCHEMA_VERSION:
            _migrate(db, path)
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")  # a writer waits for the lock here, not mid-work
        yield db
        db.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path}: {exc}") from None
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.close()


def _connect(path: Path) -> sqlite3.Connection:
    try:
        handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.close(handle)
        return sqlite3.connect(path, timeout=10, isolation_level=None)  # transactions are explicit
    except OSError as exc:
        raise DatabaseError(f"{path}: cannot open the database ({exc.strerror or 'a link'})") from None
    except sqlite3.Error as exc:
        raise DatabaseError(f"{path}: cannot open the database ({exc})") from None


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION; BEGIN IMMEDIATE: two first opens at once migrate one after the other."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise DatabaseError(f"{path}: made by a newer cortex (schema {version}; this one knows {SCHEMA_VERSION})")
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[step].split(";"):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {step}")
        db.execute("COMMIT")
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
