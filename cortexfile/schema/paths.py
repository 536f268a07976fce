"""`logs:` and `data:` where the appliance writes."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from .base import AppliancePath, Applies, NormalPath, Section, setting


class LogLevel(StrEnum):
    trace = "trace"
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


# Spellings people carry over from the legacy CLI (`--loglevel DBUG`) and other tools.
_LEVEL_ALIASES = {"dbug": "debug", "warn": "warning", "err": "error", "trce": "trace", "inf": "info"}


class Logs(Section):
    applies = Applies.restart
    level: LogLevel = setting(LogLevel.info, "Least severe messages logged.", flag="--loglevel", applies=Applies.live)
    path: AppliancePath | None = setting(None, "Folder for log files; unset logs to stdout only.", flag="--logspath")
    llama: NormalPath | None = setting(
        None, "llama.cpp log file (default: llama.log in the log folder).", flag="--logsllama"
    )
    onnx: NormalPath | None = setting(None, "ONNX runtime log file (reserved for that engine).", flag="--logsonnx")
    max_lines: int = setting(100_000, "Lines a log file holds before it is rotated.", flag="--loglines", ge=100)

    @field_validator("level", mode="before")
    @classmethod
    def _level_alias(cls, value: object) -> object:
        if isinstance(value, str):
            lowered = value.strip().lower()
            return _LEVEL_ALIASES.get(lowered, lowered)
        return value


class Conversations(Section):
    """Responses kept for `previous_response_id` (POST /v1/responses with `store`) and `cortex data export`."""

    applies = Applies.live  # read by the next app build
    enabled: bool | None = setting(
        None,
        "Keep responses in <data>/cortex.db, each readable and continued only with the API key that made it; "
        "unset: kept when the server has API keys (without keys every client would share them).",
    )
    retention_days: int = setting(30, "Responses older than this are deleted.", ge=1, le=36_500)
    max_mb: int = setting(256, "Most MiB of stored responses; the oldest go first beyond it.", ge=1)


class Data(Section):
    applies = Applies.live  # read by the model store on its next lookup
    path: AppliancePath | None = setting(
        None,
        "Folder for downloaded models (models/<sha256>.gguf) and state; "
        "unset: $XDG_DATA_HOME/cortex or ~/.local/share/cortex.",
        flag="--datapath",
    )
    conversations: Conversations = Field(
        default_factory=Conversations, description="Stored responses (conversations) and their retention."
    )
