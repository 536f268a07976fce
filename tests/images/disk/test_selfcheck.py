"""The device's factory self-check (on only with `cortex.selfcheck` on the kernel command line; the Pi 4 boot
test uses it): the program the image carries, run against a real keyed `cortex start`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from menlo_cortex.images.targets.disk.render import SELFCHECK, render

from tests.runtime.cortex_server import launch

from .conftest import plan_for

KEY = "cortex-" + "5e" * 32


def selfcheck(cortexfile: Path) -> tuple[str, str]:
    """The rendered script, and the Python program it hands to the runtime's interpreter."""
    script = render(plan_for(cortexfile)).root[SELFCHECK][0]
    return script, script.split("<<'PYTHON'\n", 1)[1].rsplit("\nPYTHON\n", 1)[0]


def run(program: str, key_file: Path, url: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-", str(key_file), url]
    return subprocess.run(command, input=program, capture_output=True, text=True, timeout=240, check=False)


def test_the_selfcheck_reports_ready_the_variant_and_a_completion_never_the_key(
    tmp_path: Path, cortex_command: list[str], test_data_dir: Path
) -> None:
    keys = tmp_path / "api-keys"
    keys.write_text(f"# API keys of this device\n{KEY}\n", encoding="utf-8")
    server = launch(tmp_path, cortex_command, test_data_dir, f"server:\n  auth:\n    api_key_file: {keys}\n")
    try:
        script, program = selfcheck(server.cortexfile)
        assert subprocess.run(["sh", "-n"], input=script, text=True, check=False, timeout=30).returncode == 0
        done = run(program, keys, server.base_url)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith("cortex-selfcheck: the service is ready")
        assert '"cpu_variant"' in lines[1]
        answer = re.fullmatch(r"cortex-selfcheck: chat completion from gemma in \d+ s: (\".*\")", lines[2])
        assert answer is not None, lines[2]
        assert json.loads(answer.group(1)).strip()
        assert KEY not in done.stdout + done.stderr

        wrong = tmp_path / "wrong-keys"
        wrong.write_text("cortex-" + "00" * 32 + "\n", encoding="utf-8")  # a key the server does not hold
        refused = run(program, wrong, server.base_url)
        assert refused.returncode == 1
        assert "cortex-selfcheck: FAILED: the health check or the chat completion failed (HTTPError)" in refused.stdout
    finally:
        server.terminate()
