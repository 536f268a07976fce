"""Log lines read back as records (what `cortex view logs` filters): the format `logs.py` writes, a record's
continuation lines (a traceback) kept with it, and the models each request touched.

A line that is not in the format (another program's output in the journal) is a record of its own with no
level, so nothing read is dropped.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

# logs.FORMAT: "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (?P<level>[A-Z]+) (?P<logger>\S+) \[(?P<request>[^\]\s]*)\] "
    r"(?P<message>.*)$"
)
# How the runtime names a model in its messages: "model `gemma`".
_MODEL = re.compile(r"model `([^`\s]{1,200})`")
_ACCESS = re.compile(r'"(?:GET|POST|PUT|DELETE|HEAD|OPTIONS|PATCH) \S+ HTTP/[\d.]+" \d{3}')
KEPT_RECORDS = 200_000  # the oldest go first: a viewer open for days keeps a bounded history
KEPT_REQUESTS = 50_000
KEPT_EXTRA = 500  # continuation lines kept per record; more are counted
LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_RANK = {level: rank for rank, level in enumerate(LEVELS)}
NO_REQUEST = "-"


@dataclass
class LogRecord:
    index: int
    time: str
    level: str  # "" for a line not in Cortex's format
    logger: str
    request: str  # NO_REQUEST outside a request
    message: str
    extra: list[str] = field(default_factory=list)  # continuation lines
    more: int = 0  # continuation lines past KEPT_EXTRA, counted only

    @property
    def text(self) -> str:
        return "\n".join([self.message, *self.extra])

    @property
    def is_access(self) -> bool:
        return self.logger == "cortex.access" and bool(_ACCESS.search(self.message))

    def models(self) -> set[str]:
        return set(_MODEL.findall(self.text))


class LogReader:
    """Turns lines into records as they come; remembers which models each request's lines named."""

    def __init__(self) -> None:
        self.records: deque[LogRecord] = deque(maxlen=KEPT_RECORDS)
        self.request_models: dict[str, set[str]] = {}
        self._read = 0

    def feed(self, lines: Iterable[str]) -> list[LogRecord]:
        """Records begun by these lines (a continuation line extends the last record instead)."""
        new: list[LogRecord] = []
        for raw in lines:
            line = raw.rstrip("\r\n")
            match = _LINE.match(line)
            continues = line[:1].isspace() or _traceback(line)
            if match is None and self.records and self.records[-1].level and continues:
                self._extend(self.records[-1], line)
                continue
            record = self._record(match, line)
            self.records.append(record)
            self._note_models(record.request, record.message)
            new.append(record)
        return new

    def _record(self, match: re.Match[str] | None, line: str) -> LogRecord:
        self._read += 1
        if match is None:
            return LogRecord(self._read, "", "", "", NO_REQUEST, line)
        return LogRecord(self._read, match["time"], match["level"], match["logger"], match["request"], match["message"])

    def _extend(self, record: LogRecord, line: str) -> None:
        if len(record.extra) < KEPT_EXTRA:
            record.extra.append(line)
            self._note_models(record.request, line)
        else:
            record.more += 1

    def _note_models(self, request: str, text: str) -> None:
        if request == NO_REQUEST or not (models := set(_MODEL.findall(text))):
            return
        self.request_models.setdefault(request, set()).update(models)
        while len(self.request_models) > KEPT_REQUESTS:
            del self.request_models[next(iter(self.request_models))]

    def matching(self, criteria: Criteria) -> Iterator[LogRecord]:
        return (record for record in self.records if criteria.accepts(record, self.request_models))


def _traceback(line: str) -> bool:
    return line.startswith(("Traceback (most recent call last):", "During handling", "The above exception")) or bool(
        re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b", line)
    )


@dataclass(frozen=True)
class Criteria:
    """What the viewer shows: at least `level`, lines of `model`'s requests (or naming it), one request, a text."""

    level: str = ""
    model: str = ""
    request: str = ""
    text: str = ""

    def accepts(self, record: LogRecord, request_models: dict[str, set[str]]) -> bool:
        if self.level and record.level and _RANK.get(record.level, len(LEVELS)) < _RANK[self.level]:
            return False
        if self.request and record.request != self.request:
            return False
        if self.model and self.model not in record.models() | request_models.get(record.request, set()):
            return False
        return not self.text or self.text.lower() in record.text.lower()
