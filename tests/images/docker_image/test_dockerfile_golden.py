"""Every rendered Dockerfile of the matrix against its reviewed copy. After an intended change:
CORTEX_UPDATE_GOLDEN=1 pytest tests/images/docker_image, then review the diff."""

from __future__ import annotations

import os

import pytest
from menlo_cortex.images.targets.docker.matrix import FLAVORS

from .dockerlint import lint
from .rendering import GOLDEN, cases

UPDATE = os.environ.get("CORTEX_UPDATE_GOLDEN") == "1"
RENDERED = cases()


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_rendered_dockerfile_matches_golden(name: str) -> None:
    golden = GOLDEN / name
    if UPDATE:
        golden.write_text(RENDERED[name], encoding="utf-8")
    assert golden.is_file(), f"no golden file {golden}: run with CORTEX_UPDATE_GOLDEN=1 and review it"
    assert RENDERED[name] == golden.read_text(encoding="utf-8"), f"{golden} differs (CORTEX_UPDATE_GOLDEN=1)"


def test_no_stale_golden_files() -> None:
    assert sorted(p.name for p in GOLDEN.glob("*.Dockerfile")) == sorted(RENDERED)


def test_matrix_covers_the_issue() -> None:
    wanted = {(d, a) for d in ("alpine", "debian", "ubuntu", "arch", "fedora") for a in ("cpu", "vulkan")}
    wanted |= {("ubuntu", "cuda"), ("debian", "cuda"), ("fedora", "cuda"), ("arch", "cuda"), ("ubuntu", "rocm")}
    assert set(FLAVORS) == wanted


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_no_base_has_a_python_older_than_the_project_needs(name: str) -> None:
    """Ubuntu 22.04's Python is 3.10, and the project needs 3.11 (pyproject.toml): its images could never install
    it (the CUDA and ROCm ones were on it)."""
    assert "22.04" not in RENDERED[name]


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_rendered_dockerfile_passes_lint(name: str) -> None:
    assert lint(RENDERED[name]) == []
