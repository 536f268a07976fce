"""The generated files against reviewed copies, one folder per case. After an intended change:
CORTEX_UPDATE_GOLDEN=1 pytest tests/images/systemd/test_golden.py, then review the diff."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from menlo_cortex.images.targets.systemd.render import FILES, render_files

from .conftest import GOLDEN, PROJECT_WHEEL, plan_for

CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "Cortexfile.yaml").is_file())
UPDATE = os.environ.get("CORTEX_UPDATE_GOLDEN") == "1"


def expected_path(case: str, bundle_path: str) -> Path:
    return GOLDEN / case / Path(bundle_path).name


@pytest.mark.parametrize("case", CASES)
def test_rendered_files_match_golden(case: str) -> None:
    rendered = render_files(plan_for(GOLDEN / case / "Cortexfile.yaml"), PROJECT_WHEEL)
    assert set(rendered) == set(FILES)
    for bundle_path, text in rendered.items():
        golden = expected_path(case, bundle_path)
        if UPDATE:
            golden.write_text(text, encoding="utf-8")
        assert golden.is_file(), f"no golden file {golden}: run with CORTEX_UPDATE_GOLDEN=1 and review it"
        assert text == golden.read_text(encoding="utf-8"), f"{golden} differs (CORTEX_UPDATE_GOLDEN=1 to accept)"


def test_every_case_has_been_reviewed() -> None:
    assert len(CASES) >= 4
    for case in CASES:
        assert {p.name for p in (GOLDEN / case).iterdir()} == {"Cortexfile.yaml", *(Path(f).name for f in FILES)}


def test_rendering_is_pure_and_stable() -> None:
    path = GOLDEN / "server" / "Cortexfile.yaml"
    assert render_files(plan_for(path), PROJECT_WHEEL) == render_files(plan_for(path), PROJECT_WHEEL)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (scripts/setup.sh)")
def test_shell_scripts_pass_shellcheck() -> None:
    scripts = sorted(GOLDEN.glob("*/*.sh"))
    done = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    ("host", "publish", "ready"),
    [
        ("::1", "PublishPort=[::1]:8000:8000", "http://[::1]:8000/ready"),
        ("::", "PublishPort=8000:8000", "http://[::1]:8000/ready"),
        ("192.0.2.7", "PublishPort=192.0.2.7:8000:8000", "http://192.0.2.7:8000/ready"),
    ],
)
def test_an_ipv6_listener_is_bracketed_where_a_port_follows(
    host: str, publish: str, ready: str, tmp_path: Path
) -> None:
    path = tmp_path / "Cortexfile.yaml"
    path.write_text(f"version: 1\nserver:\n  host: '{host}'\n  port: 8000\n  auth:\n    api_key_file: /etc/cortex/k\n")
    files = render_files(plan_for(path), PROJECT_WHEEL)
    assert publish in files["quadlet/cortex.container"].splitlines()
    assert f"READY_URL={shlex.quote(ready)}" in files["install.sh"].splitlines()
