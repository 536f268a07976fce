"""Fixtures shared by every test package: the real test model, free ports, Cortexfiles on disk.
Markers derived from what each test needs."""

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
# What a test needs, told by a fixture it uses directly or through other fixtures, so a new test
# that uses one is marked without anyone remembering. What no fixture shows (a VM booted inside
# the test) is marked with `pytestmark` in the test module.
NEEDS = {
    "test_data_dir": "model",  # the real test model; every server, image and bundle fixture with a model uses it
    "engine_tools": "engine",  # Podman, the registry and debootstrap bases (tests/images/docker_image/conftest.py)
    "base_root": "engine",  # a debootstrap'd Debian root (tests/images/systemd/test_install.py)
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for fixture, need in NEEDS.items():
            if fixture in fixtures and item.get_closest_marker(need) is None:
                item.add_marker(need)


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
