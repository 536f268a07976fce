"""The generated files against reviewed copies, one folder per case. After an intended change:
CORTEX_UPDATE_GOLDEN=1 pytest tests/images/systemd/test_golden.py, then review the diff."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from menlo_cortex.images.targets.systemd.render import SCRIPTS, SCRIPTS_DIR, TEMPLATES, render

from tests.images.artifacts import texts

from .conftest import GOLDEN, PROJECT_WHEEL, plan_for

CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "Cortexfile.yaml").is_file())
UPDATE = os.environ.get("CORTEX_UPDATE_GOLDEN") == "1"


def expected_path(case: str, bundle_path: str) -> Path:
    return GOLDEN / case / Path(bundle_path).name


@pytest.mark.parametrize("case", CASES)
def test_rendered_files_match_golden(case: str) -> None:
    rendered = render(plan_for(GOLDEN / case / "Cortexfile.yaml"), PROJECT_WHEEL)
    assert set(rendered) == {*TEMPLATES, *SCRIPTS}
    for name in SCRIPTS:  # the same in every bundle: shellcheck reads them where they live
        assert rendered[name].content == (SCRIPTS_DIR / name).read_bytes()
        assert rendered[name].mode == 0o755
    for bundle_path in TEMPLATES:
        golden, artifact = expected_path(case, bundle_path), rendered[bundle_path]
        assert isinstance(artifact.content, bytes)
        assert artifact.mode == 0o644
        if UPDATE:
            golden.write_bytes(artifact.content)
        assert golden.is_file(), f"no golden file {golden}: run with CORTEX_UPDATE_GOLDEN=1 and review it"
        assert artifact.content == golden.read_bytes(), f"{golden} differs (CORTEX_UPDATE_GOLDEN=1 to accept)"


def test_every_case_has_been_reviewed() -> None:
    assert len(CASES) >= 4
    for case in CASES:
        assert {p.name for p in (GOLDEN / case).iterdir()} == {"Cortexfile.yaml", *(Path(f).name for f in TEMPLATES)}


def test_rendering_is_pure_and_stable() -> None:
    path = GOLDEN / "server" / "Cortexfile.yaml"
    assert render(plan_for(path), PROJECT_WHEEL) == render(plan_for(path), PROJECT_WHEEL)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (scripts/setup.sh)")
@pytest.mark.parametrize("case", CASES)
def test_the_scripts_pass_shellcheck_with_each_cases_values(case: str) -> None:
    """The scripts as they live in the package, reading each golden case's bundle.env."""
    scripts = [str(SCRIPTS_DIR / name) for name in SCRIPTS]
    command = ["shellcheck", "-x", "-P", str(GOLDEN / case), *scripts, str(GOLDEN / case / "bundle.env")]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
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
    files = texts(render(plan_for(path), PROJECT_WHEEL))
    assert publish in files["quadlet/cortex.container"].splitlines()
    assert f"READY_URL={shlex.quote(ready)}" in files["bundle.env"].splitlines()
