"""Fixtures shared by every test package: the real test model, free ports, Cortexfiles on disk.
Markers derived from what each test needs, and each test's time limit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_timeout

ROOT = Path(__file__).resolve().parent.parent
TEST_MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
# What a test needs, told by a fixture it uses directly or through other fixtures, so a new test
# that uses one is marked without anyone remembering. What no fixture shows (a VM booted inside
# the test) is marked with `pytestmark` in the test module.
NEEDS = {
    "test_data_dir": "model",  # the real test model; every server, image and bundle fixture with a model uses it
    "engine_tools": "engine",  # Podman, the registry and debootstrap bases (tests/images/docker_image/conftest.py)
    "base_root": "engine",  # a debootstrap'd Debian root (tests/images/systemd/test_install.py)
    "oci_tools": "engine",  # Podman, skopeo, the registry and the OCI image's root (tests/images/oci/conftest.py)
    "device_image": "vm",  # a disk image built by `cortex build --format disk` (tests/images/disk/conftest.py)
}
# Session fixtures count against the first test that uses them: an engine test may compile the llama
# wheel when its cache is cold (13 min on 2 cores), make a debootstrap base and build an image (each
# capped at 25 min by run_cortex). A test's own @pytest.mark.timeout wins; the rest get pyproject's.
NEED_TIMEOUT_S = {"engine": 3600, "vm": 3600}
# After pytest-timeout's SIGALRM failed a test (its teardowns then stop what it started), the main
# thread may still not run Python (stuck in C): this much later the run is ended with every stack.
STUCK_GRACE_S = 120
BACKSTOP = pytest.StashKey[threading.Timer]()


ARM64_SKIP = pytest.mark.skip(reason="arm64 images and wheels build under emulation: run `make test-arm64`")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("arm64") and os.environ.get("CORTEX_TEST_ARM64") != "1":
            item.add_marker(ARM64_SKIP)
        fixtures = set(getattr(item, "fixturenames", ()))
        for fixture, need in NEEDS.items():
            if fixture in fixtures and item.get_closest_marker(need) is None:
                item.add_marker(need)
        limits = [NEED_TIMEOUT_S[need] for need in NEED_TIMEOUT_S if item.get_closest_marker(need)]
        if limits and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(max(limits)))


def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> None:
    """Before pytest-timeout arms its own timer (this returns None, so it still does): with its
    signal method, the thread method's stack dump and exit as a backstop, STUCK_GRACE_S later."""
    if settings.method == "signal":
        backstop = threading.Timer(settings.timeout + STUCK_GRACE_S, pytest_timeout.timeout_timer, (item, settings))
        backstop.daemon = True
        backstop.start()
        item.stash[BACKSTOP] = backstop


def pytest_timeout_cancel_timer(item: pytest.Item) -> None:
    backstop = item.stash.get(BACKSTOP, None)
    if backstop is not None:
        backstop.cancel()


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
def project_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = tmp_path_factory.mktemp("wheels")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)]
    subprocess.run([*build, str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("menlo_cortex-*.whl")
    return wheel


@pytest.fixture(scope="session")
def installed_cortex(tmp_path_factory: pytest.TempPathFactory, project_wheel: Path) -> Path:
    """`menlo-cortex[build]` from its wheel into a fresh venv outside the checkout: the `cortex` it installs
    (the packaging tests use it, and the OCI image and the device image the end-to-end tests run are built
    with it: every format works from a plain install)."""
    where = tmp_path_factory.mktemp("installed")
    wheel = project_wheel
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt")]
    done = subprocess.run([*install, f"{wheel}[build]"], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin" / "cortex"


@pytest.fixture(scope="session")
def cortex_command() -> list[str]:
    return [sys.executable, "-m", "menlo_cortex"]


def pytest_unconfigure(config: pytest.Config) -> None:
    """llama-cpp-python opens /dev/null twice at import and never closes it. Under `filterwarnings = error`
    the interpreter's exit turns each into an "Exception ignored ... ResourceWarning" screen after pytest's
    summary; every engine is closed by now, so they are closed here."""
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()
