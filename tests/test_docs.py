"""The README's commands run as written, so the docs cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cortexfile.test_migrate import CORTEXRC

ROOT = Path(__file__).resolve().parent.parent
# `start` serves until stopped; `build`, `lock` and `bench` need a container engine, a Debian root or the
# models: tests/runtime, tests/images and tests/benchmark run them for real; `view` needs a terminal, and
# tests/cli/test_view_logs.py gives it one (tmux); a bare `cortex init` would meet the folder's Cortexfile, and
# tests/cli/test_init.py runs it.
NOT_RUN_HERE = ("cortex start", "cortex build", "cortex lock", "cortex bench", "cortex view")
BARE_INIT = "cortex init"


def readme_commands() -> list[str]:
    """The README's commands, but its Quickstart's: tests/test_quickstart.py runs those after set-up."""
    head, _, rest = (ROOT / "README.md").read_text().partition("## Quickstart")
    text = head + rest[rest.index("\n## ") :]
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("cortex ") and not line.startswith(NOT_RUN_HERE)
            and line != BARE_INIT]  # fmt: skip


def test_readme_has_commands() -> None:
    assert len(readme_commands()) >= 6


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs(command: str, tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".cortexrc").write_text(CORTEXRC)
    (tmp_path / "Cortexfile.yaml").write_text("version: 1\n")
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "HOME": str(home), "PATH": f"{bin_dir}:{os.environ['PATH']}", "HF_TOKEN": "x"}
    result = subprocess.run(
        ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
