"""bench/scheduler_cpu.py: the scheduler's CPU outside llama_decode, per generated token, measured in one process on
the real model; every stream's tokens counted, every round kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "bench" / "scheduler_cpu.py"


@pytest.mark.timeout(300)
def test_it_measures_the_scheduler_outside_the_decode_at_each_level(test_model_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "scheduler.json"
    command = [sys.executable, str(TOOL), "--model", str(test_model_path), "--streams", "1,2", "--tokens", "12",
               "--rounds", "2", "--context", "256", "--json", str(out)]  # fmt: skip
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"1", "2"}
    for level, found in results.items():
        assert len(found["rounds"]) == 2
        assert all(0 < each < 1e6 for each in found["rounds"])  # some CPU, and less than a second a token
        assert found["tokens_per_s"] > 0, level
        assert found["loop_us_per_token"] > 0, level
        assert found["loop_wake_ups_per_token"] >= 0, level
        assert found["scheduler_preempted_per_token"] >= 0, level
    assert "SCHEDULER µs/TOKEN OUTSIDE DECODE" in done.stdout
