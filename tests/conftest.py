"""Fixtures shared by every test package: the real test model, free ports, Cortexfiles on disk."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cortex"


@pytest.fixture(scope="session")
def test_data_dir() -> Path:
    """A data folder whose store holds the test model (placed by scripts/setup.sh)."""
    data = cache_dir() / "test-data"
    model = data / "models" / f"{TEST_MODEL_SHA256}.gguf"
    if not model.is_file():
        pytest.fail(f"test model missing at {model}: run `make setup` (scripts/test-model.py)")
    return data


@pytest.fixture(scope="session")
def test_model_path(test_data_dir: Path) -> Path:
    return test_data_dir / "models" / f"{TEST_MODEL_SHA256}.gguf"


def find_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    return find_free_port()


@pytest.fixture
def write_cortexfile(tmp_path: Path) -> Callable[..., Path]:
    """Write a Cortexfile (dedented) into tmp_path and return its path."""

    def write(text: str, name: str = "Cortexfile.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def cortex_command() -> list[str]:
    return [sys.executable, "-m", "menlo_cortex"]
