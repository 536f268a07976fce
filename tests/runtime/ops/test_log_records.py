"""Log lines read back as records, as `cortex view logs` filters them."""

from __future__ import annotations

import logging

from menlo_cortex.runtime.ops.log_records import Criteria, LogReader
from menlo_cortex.runtime.ops.logs import FORMAT

LINES = [
    "2026-12-05 10:00:00,001 INFO cortex.models [-] model `gemma` loaded from /models/a.gguf",
    "2026-12-05 10:00:01,000 INFO cortex.usage [req-1] model `gemma`: 10 prompt tokens, 5 generated",
    '2026-12-05 10:00:01,001 INFO cortex.access [req-1] 127.0.0.1:5000 "POST /v1/chat/completions HTTP/1.1" 200 9.1ms',
    "2026-12-05 10:00:02,000 ERROR cortex.errors [req-2] unhandled error in GET /v1/x",
    "Traceback (most recent call last):",
    '  File "x.py", line 1, in <module>',
    "RuntimeError: boom",
    '2026-12-05 10:00:02,001 INFO cortex.access [req-2] 127.0.0.1:5001 "GET /v1/x HTTP/1.1" 500 1.0ms',
    "a line from another program",
    "2026-12-05 10:00:03,000 WARNING cortex.reload [-] config reload refused",
]


def read() -> LogReader:
    reader = LogReader()
    reader.feed(line + "\n" for line in LINES)
    return reader


def shown(reader: LogReader, **criteria: str) -> list[str]:
    return [record.message for record in reader.matching(Criteria(**criteria))]


def test_the_runtimes_own_format_is_read_back() -> None:
    record = logging.LogRecord("cortex.access", logging.INFO, "x", 1, "hello [x] %s", ("world",), None)
    record.request_id = "abc-1"
    (parsed,) = LogReader().feed([logging.Formatter(FORMAT).format(record)])
    assert (parsed.level, parsed.logger, parsed.request, parsed.message) == ("INFO", "cortex.access", "abc-1",
                                                                             "hello [x] world")  # fmt: skip


def test_a_traceback_stays_with_its_record_and_a_foreign_line_is_its_own() -> None:
    reader = read()
    assert len(reader.records) == 7
    error = reader.records[3]
    assert error.extra == LINES[4:7]
    assert "RuntimeError: boom" in error.text
    foreign = reader.records[5]
    assert (foreign.level, foreign.message) == ("", "a line from another program")
    assert [record.is_access for record in reader.records].count(True) == 2


def test_filters() -> None:
    reader = read()
    assert shown(reader, level="WARNING") == [
        "unhandled error in GET /v1/x", "a line from another program", "config reload refused"]  # fmt: skip
    assert len(shown(reader, request="req-1")) == 2
    # the model's requests: the access line names no model, its request's usage line does
    assert shown(reader, model="gemma")[1:] == [LINES[1].split("] ", 1)[1], LINES[2].split("] ", 1)[1]]
    assert shown(reader, text="BOOM") == ["unhandled error in GET /v1/x"]  # continuation lines are searched
    assert shown(reader, model="other") == []


def test_an_indented_line_continues_the_record_before_it() -> None:
    reader = LogReader()
    reader.feed(["2026-12-05 10:00:00,001 INFO cortex.x [-] one\n", "  two\n"])
    assert reader.records[0].extra == ["  two"]
