"""systemd's own judgement of the generated units (the server, and cortex sync, which runs as root with one
capability): `systemd-analyze security --offline=true` scores every golden case 2.0 or lower (0 best,
10 worst; a bare unit scores 9.6)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import GOLDEN

CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "cortex.service").is_file())
MAX_EXPOSURE = 2.0
pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")


def exposure(unit: Path) -> float:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", unit.name],
        cwd=unit.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout + done.stderr)
    assert match, done.stdout + done.stderr
    return float(match[1])


@pytest.mark.parametrize("name", ["cortex.service", "cortex-sync.service"])
@pytest.mark.parametrize("case", CASES)
def test_exposure_is_low(case: str, name: str, tmp_path: Path) -> None:
    unit = tmp_path / name
    shutil.copyfile(GOLDEN / case / name, unit)
    assert exposure(unit) <= MAX_EXPOSURE


def test_the_scale_is_real(tmp_path: Path) -> None:
    unit = tmp_path / "cortex.service"
    unit.write_text("[Service]\nExecStart=/bin/true\n", encoding="utf-8")
    assert exposure(unit) > MAX_EXPOSURE * 4
