"""`systemctl reload` (SIGHUP) re-reads the Cortexfile over the same systemd defaults layer the service
started with (`cortex start --defaults systemd`): the data folder stays the one the models are in."""

from __future__ import annotations

from pathlib import Path

from menlo_cortex.runtime.reload.check import load_candidate

from .conftest import load_systemd


def test_a_reload_keeps_the_format_defaults(tmp_path: Path) -> None:
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text("version: 1\nlogs:\n  level: info\n", encoding="utf-8")
    started = load_systemd(cortexfile)
    cortexfile.write_text("version: 1\nlogs:\n  level: debug\n", encoding="utf-8")
    reloaded = load_candidate(started.inputs)
    assert str(reloaded.config.data.path) == "/var/lib/cortex"
    assert reloaded.config.logs.level.value == "debug"


def test_a_file_value_still_wins_over_the_format_default(tmp_path: Path) -> None:
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text("version: 1\n", encoding="utf-8")
    started = load_systemd(cortexfile)
    cortexfile.write_text("version: 1\ndata:\n  path: /var/lib/elsewhere\n", encoding="utf-8")
    assert str(load_candidate(started.inputs).config.data.path) == "/var/lib/elsewhere"
