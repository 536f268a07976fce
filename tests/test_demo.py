"""`make demo`'s path, end to end: validate, show, serve the quickstart, one chat answer, stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import find_free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(600)  # demo.sh alone may take up to 300 s
def test_demo_answers_and_stops(test_data_dir: Path) -> None:
    venv = Path(sys.executable).parent.parent
    env = {**os.environ, "DEMO_ONESHOT": "1", "DEMO_PORT": str(find_free_port()), "VENV": str(venv)}
    result = subprocess.run(
        ["bash", "scripts/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid (1 model, start preflight passed)" in result.stdout
    assert "models[0].chat_format" in result.stdout
    answer = result.stdout.split("== POST /v1/chat/completions")[1].strip()
    assert len(answer) > 10, result.stdout
