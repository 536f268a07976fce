"""Shared pieces of the disk target's tests: loading with the format's defaults, planning a case."""

from __future__ import annotations

from pathlib import Path

import pytest
from menlo_cortex.cortexfile import formats
from menlo_cortex.cortexfile.hashing import config_hash
from menlo_cortex.cortexfile.loader import Resolved, load
from menlo_cortex.images.targets.disk.plan import FORMAT, DiskPlan, make_plan

from tests.conftest import find_free_port

from .fixtures import Image, build_image, needs_image_tools
from .updates import SECOND, build_update

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"


def load_disk(path: Path) -> Resolved:
    return load(path, format_defaults=formats.get(FORMAT).loader_argument())


def plan_for(path: Path) -> DiskPlan:
    resolved = load_disk(path)
    return make_plan(resolved, config_hash(resolved.config))


@pytest.fixture(scope="session")
def device_image(tmp_path_factory: pytest.TempPathFactory, test_data_dir: Path, installed_cortex: Path) -> Image:
    """The x86-64 device image with the test model, following a Git repository and taking signed updates (the boot
    test serves both), built once per run by `cortex` installed from its wheel outside the checkout."""
    needs_image_tools()
    folder = tmp_path_factory.mktemp("device")
    cortex = (str(installed_cortex),)
    return build_image(folder, test_data_dir, sync_port=find_free_port(), cortex=cortex, update_port=find_free_port())


@pytest.fixture(scope="session")
def second_update(device_image: Image, tmp_path_factory: pytest.TempPathFactory, test_data_dir: Path) -> Path:
    """The device image's next version (build.version 1.4.3) as a signed update, built once per run."""
    return build_update(device_image, tmp_path_factory.mktemp("second") / "v2", test_data_dir, SECOND)
