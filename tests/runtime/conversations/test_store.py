"""The stored responses in cortex.db: owners, conversations, retention by age and size, the schema shared with
bench runs, and `cortex data export|prune` on them."""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from menlo_cortex.benchmark.run_store import RunStore
from menlo_cortex.runtime.conversations.items import training_example
from menlo_cortex.runtime.conversations.store import (
    BrokenConversation,
    ConversationStore,
    ConversationTooLong,
    Retention,
    StoredResponse,
)
from menlo_cortex.runtime.ops.database import SCHEMA_VERSION, DatabaseError, transaction

from menlo_cortex.cli import main
from tests.benchmark.reports import report
from tests.runtime.cortex_server import write_cortexfile

ROOMY = Retention(days=30, max_bytes=10**9)


def turn(number: int, previous: str | None = None, owner: str = "key-a", age_days: float = 0) -> StoredResponse:
    asked = [{"type": "message", "id": f"msg_in{number}", "role": "user", "content": [
        {"type": "input_text", "text": f"question {number}"}]}]  # fmt: skip
    said = [{"type": "message", "id": f"msg_out{number}", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": f"answer {number}", "annotations": []}]}]  # fmt: skip
    body = {"id": f"resp_{number}", "instructions": "Be brief.", "output": said, "tools": []}
    return StoredResponse(f"resp_{number}", owner, time.time() - age_days * 86_400, previous, body, asked)


def test_a_response_is_read_continued_and_deleted_by_its_owner_only(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, ROOMY)
    assert store.get("resp_1", "key-a") is None  # no database yet: nothing, and nothing created
    assert not store.path.exists()
    store.add(turn(1))
    store.add(turn(2, previous="resp_1"))
    found = store.get("resp_1", "key-a")
    assert found is not None
    assert (found.body, found.input_items, found.previous_id) == (turn(1).body, turn(1).input_items, None)
    assert store.get("resp_1", "key-b") is None
    assert [response.id for response in store.conversation("resp_2", "key-a")] == ["resp_1", "resp_2"]
    assert store.conversation("resp_2", "key-b") == []
    assert not store.delete("resp_1", "key-b")
    assert store.delete("resp_1", "key-a")
    with pytest.raises(BrokenConversation) as broken:
        store.conversation("resp_2", "key-a")
    assert broken.value.missing == "resp_1"


def test_retention_deletes_what_is_too_old_then_the_oldest_beyond_the_size(tmp_path: Path) -> None:
    one = len(json.dumps(turn(1).body, separators=(",", ":"))) + len(json.dumps(turn(1).input_items,
                                                                                separators=(",", ":")))  # fmt: skip
    store = ConversationStore(tmp_path, Retention(days=7, max_bytes=3 * one + one // 2))
    store.add(turn(1, age_days=8))
    store.add(turn(2, age_days=2))
    assert store.get("resp_1", "key-a") is None  # past retention_days at the next write
    for number in (3, 4, 5):
        store.add(turn(number))
    kept = [number for number in range(1, 6) if store.get(f"resp_{number}", "key-a")]
    assert kept == [3, 4, 5]  # three fit: the oldest went first
    assert store.prune(older_than_days=0) == 3
    assert store.get("resp_5", "key-a") is None


def test_bench_runs_and_responses_share_one_schema(tmp_path: Path) -> None:
    runs = RunStore(tmp_path)
    with sqlite3.connect(runs.path) as db:  # a database from before responses were stored: schema 1
        db.execute("CREATE TABLE bench_runs (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, label TEXT NOT NULL,"
                   " model TEXT NOT NULL, complete INTEGER NOT NULL, report TEXT NOT NULL)")  # fmt: skip
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO bench_runs VALUES (1, 'then', 'box', 'm', 1, ?)", (json.dumps(report()),))
    store = ConversationStore(tmp_path, ROOMY)
    store.add(turn(1))
    assert [run.id for run in runs.runs()] == [1]
    with transaction(store.path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_conversation_is_one_training_example(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path, ROOMY)
    store.add(turn(1))
    called = turn(2, previous="resp_1")
    call = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "now", "arguments": "{}"}
    called.body["output"] = [call]
    called.body["tools"] = [{"type": "function", "name": "now", "parameters": {"type": "object"}}]
    store.add(called)
    result = {"type": "function_call_output", "id": "fco_1", "call_id": "call_1", "output": "noon"}
    store.add(StoredResponse("resp_3", "key-a", time.time(), "resp_2", turn(3).body, [result]))
    [conversation] = list(store.conversations())
    example = training_example(conversation)
    assert example["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "question 1"},
        {"role": "assistant", "content": "answer 1"},
        {"role": "user", "content": "question 2"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
        {"role": "assistant", "content": "answer 3"},
    ]  # fmt: skip
    assert "tools" not in example  # the last response declared none


def _cli(tmp_path: Path, *args: str) -> list[str]:
    cortexfile = write_cortexfile(tmp_path, "")
    return [*args, "-f", str(cortexfile), "--datapath", str(tmp_path / "data")]


def test_cortex_data_exports_and_prunes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ConversationStore(tmp_path / "data", ROOMY)
    store.add(turn(1))
    store.add(turn(2, previous="resp_1"))
    store.add(turn(3, owner="key-b"))
    assert main(_cli(tmp_path, "data", "export", "--format", "jsonl")) == 0
    out, err = capsys.readouterr()
    lines: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines()]
    assert [len(line["messages"]) for line in lines] == [5, 3]  # system + two turns; system + one turn
    assert "2 conversations exported" in err
    written = tmp_path / "out.jsonl"
    assert main(_cli(tmp_path, "data", "export", "-o", str(written))) == 0
    assert written.read_text().splitlines() == out.splitlines()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert main(_cli(tmp_path, "data", "prune")) == 0
    assert "0 stored responses deleted" in capsys.readouterr().out
    assert main(_cli(tmp_path, "data", "prune", "--older-than", "0")) == 0
    assert "3 stored responses deleted" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:
        main(_cli(tmp_path, "data", "prune", "--older-than", "soon"))
    assert usage.value.code == 2
    assert "not a number of days: 'soon'" in capsys.readouterr().err


def test_a_conversation_too_long_to_continue_is_refused_before_it_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from menlo_cortex.runtime.conversations import store as module

    store = ConversationStore(tmp_path, ROOMY)
    for number in range(1, 6):
        store.add(turn(number, previous=f"resp_{number - 1}" if number > 1 else None))
    assert len(store.conversation("resp_5", "key-a")) == 5
    monkeypatch.setattr(module, "MAX_CHAIN", 4)
    with pytest.raises(ConversationTooLong):
        store.conversation("resp_5", "key-a")
    assert len(store.conversation("resp_4", "key-a")) == 4
    monkeypatch.setattr(module, "MAX_CONVERSATION_BYTES", 1)
    with pytest.raises(ConversationTooLong):
        store.conversation("resp_2", "key-a")
    assert len(store.conversation("resp_1", "key-a")) == 1


def test_one_owner_storing_much_pushes_out_its_own_responses_first(tmp_path: Path) -> None:
    one = len(json.dumps(turn(1).body, separators=(",", ":"))) + len(json.dumps(turn(1).input_items,
                                                                                separators=(",", ":")))  # fmt: skip
    store = ConversationStore(tmp_path, Retention(days=7, max_bytes=4 * one + one // 2))
    store.add(turn(1, owner="quiet"))
    for number in range(2, 8):
        store.add(turn(number, owner="flood"))
    assert store.get("resp_1", "quiet") is not None  # the oldest, but its owner keeps little
    assert [n for n in range(2, 8) if store.get(f"resp_{n}", "flood")] == [5, 6, 7]
    huge = turn(9, owner="quiet")
    huge.input_items[0]["content"][0]["text"] = "é" * (3 * one)  # counted in bytes (UTF-8), not characters
    assert not store.add(huge)  # larger than the whole retention: not kept, and says so
    assert store.get("resp_9", "quiet") is None


def test_the_database_is_private_and_never_opened_through_a_link(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "data", ROOMY)
    store.add(turn(1))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    elsewhere = tmp_path / "elsewhere.db"
    elsewhere.write_bytes(b"")
    planted = ConversationStore(tmp_path / "planted", ROOMY)
    planted.path.parent.mkdir()
    planted.path.symlink_to(elsewhere)
    with pytest.raises(DatabaseError, match="cannot open the database"):
        planted.add(turn(1))
    assert elsewhere.read_bytes() == b""
