"""Logging setup: line-based rotation, levels, request ids, and llama.cpp's log kept apart."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.cortexfile.schema.paths import Logs
from menlo_cortex.runtime.ops.logs import LLAMA_LOGGER, REQUEST_ID, TRACE, LineRotatingFileHandler, configure_logging


def logs_config(**values: object) -> Logs:
    return Cortexfile.model_validate({"version": 1, "logs": values}).logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, llama = logging.getLogger(), logging.getLogger(LLAMA_LOGGER)
    saved = (list(root.handlers), root.level, list(llama.handlers), llama.propagate)
    yield
    for handler in [*root.handlers, *llama.handlers]:
        if handler not in saved[0]:
            handler.close()
    root.handlers[:], llama.handlers[:] = saved[0], saved[2]
    root.setLevel(saved[1])
    llama.propagate = saved[3]


def test_the_file_rotates_at_max_lines_and_keeps_backups(tmp_path: Path) -> None:
    handler = LineRotatingFileHandler(tmp_path / "cortex.log", max_lines=10, backups=2)
    logger = logging.Logger("rotation-test")
    logger.addHandler(handler)
    for index in range(25):
        logger.warning("line %d", index)
    handler.close()
    current, first, second = (tmp_path / name for name in ("cortex.log", "cortex.log.1", "cortex.log.2"))
    assert current.read_text().splitlines() == [f"line {i}" for i in range(20, 25)]
    assert first.read_text().splitlines() == [f"line {i}" for i in range(10, 20)]
    assert second.read_text().splitlines() == [f"line {i}" for i in range(10)]


def test_line_count_survives_a_restart(tmp_path: Path) -> None:
    (tmp_path / "cortex.log").write_text("old\n" * 9, encoding="utf-8")
    handler = LineRotatingFileHandler(tmp_path / "cortex.log", max_lines=10)
    logger = logging.Logger("restart-test")
    logger.addHandler(handler)
    logger.warning("tenth")
    logger.warning("eleventh")
    handler.close()
    assert (tmp_path / "cortex.log").read_text() == "eleventh\n"


@pytest.mark.usefixtures("restore_logging")
def test_levels_come_from_the_config_and_debug_flag(tmp_path: Path) -> None:
    configure_logging(logs_config(level="warning"), stream=io.StringIO())
    assert logging.getLogger().level == logging.WARNING
    configure_logging(logs_config(level="warning"), debug=True, stream=io.StringIO())
    assert logging.getLogger().level == logging.DEBUG
    configure_logging(logs_config(level="trace"), stream=io.StringIO())
    assert logging.getLogger().level == TRACE


@pytest.mark.usefixtures("restore_logging")
def test_lines_go_to_stdout_and_the_log_folder_with_the_request_id(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging(logs_config(path=str(tmp_path / "logs")), stream=stream)
    token = REQUEST_ID.set("req-77")
    try:
        logging.getLogger("cortex.test").info("inside a request")
    finally:
        REQUEST_ID.reset(token)
    logging.getLogger("cortex.test").info("outside")
    written = (tmp_path / "logs" / "cortex.log").read_text(encoding="utf-8")
    for text in (stream.getvalue(), written):
        assert "INFO cortex.test [req-77] inside a request" in text
        assert "[-] outside" in text


@pytest.mark.usefixtures("restore_logging")
def test_llama_cpp_messages_go_to_their_own_file_when_one_is_set(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging(logs_config(llama=str(tmp_path / "llama.log")), stream=stream)
    logging.getLogger(LLAMA_LOGGER).warning("ggml says hi")
    assert "ggml says hi" in (tmp_path / "llama.log").read_text(encoding="utf-8")
    assert "ggml says hi" not in stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_without_a_llama_file_llama_cpp_messages_join_the_main_log() -> None:
    stream = io.StringIO()
    configure_logging(logs_config(), stream=stream)
    logging.getLogger(LLAMA_LOGGER).warning("ggml says hi")
    assert "WARNING cortex.llama [-] ggml says hi" in stream.getvalue()
