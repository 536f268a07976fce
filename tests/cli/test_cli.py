"""The `cortex` console script as a user runs it: exit codes, no tracebacks, version, show, schema."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from menlo_cortex import __version__

ROOT = Path(__file__).resolve().parents[2]


def run(cortex_command: list[str], *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cortex_command, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def test_version(cortex_command: list[str]) -> None:
    result = run(cortex_command, "--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"cortex {__version__}")


def test_valid_file_exits_0(cortex_command: list[str]) -> None:
    result = run(cortex_command, "validate", "-f", str(ROOT / "examples/quickstart/Cortexfile.yaml"))
    assert result.returncode == 0, result.stderr
    assert "valid (1 model)" in result.stdout


def test_invalid_file_exits_2_without_traceback(
    cortex_command: list[str], write_cortexfile: Callable[..., Path]
) -> None:
    path = write_cortexfile("version: 1\nserver:\n  port: -1\n")
    result = run(cortex_command, "validate", "-f", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}:3:9: server.port: ")
    assert "Traceback" not in result.stderr


def test_usage_error_exits_2(cortex_command: list[str]) -> None:
    result = run(cortex_command, "validate", "--preflight", "sometimes")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_bad_flag_value_exits_2(cortex_command: list[str]) -> None:
    result = run(
        cortex_command, "config", "show", "-f", str(ROOT / "examples/quickstart/Cortexfile.yaml"), "--cors", "2"
    )
    assert result.returncode == 2
    assert "expected 1 or 0" in result.stderr


def test_config_show_json_names_origins(cortex_command: list[str], write_cortexfile: Callable[..., Path]) -> None:
    path = write_cortexfile("version: 1\nserver:\n  port: 8000\n")
    env = {"PATH": "/usr/bin:/bin", "CORTEX_LOGS__LEVEL": "debug"}
    result = run(cortex_command, "config", "show", "-f", str(path), "--json", "--host", "::1", env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["origins"]["server.port"] == f"{path}:3:9"
    assert shown["origins"]["logs.level"] == "env CORTEX_LOGS__LEVEL"
    assert shown["origins"]["server.host"] == "flag --host"
    assert shown["origins"]["server.cors.enabled"] == "default"
    assert shown["config"]["server"]["host"] == "::1"
    assert len(shown["hash"]) == 64


def test_config_hash_is_stable_for_the_same_config(
    cortex_command: list[str], write_cortexfile: Callable[..., Path]
) -> None:
    one = write_cortexfile("version: 1\nserver: {port: 8000}\n", "one.yaml")
    two = write_cortexfile("# same config, other spelling\nserver:\n  port: 8000\nversion: 1\n", "two.yaml")
    hashes = {
        json.loads(run(cortex_command, "config", "show", "-f", str(p), "--json").stdout)["hash"] for p in (one, two)
    }
    assert len(hashes) == 1


def test_schema_command_prints_the_committed_schema(cortex_command: list[str]) -> None:
    result = run(cortex_command, "schema")
    assert json.loads(result.stdout) == json.loads((ROOT / "cortexfile.schema.json").read_text())


def test_start_refuses_open_host_without_keys(cortex_command: list[str], write_cortexfile: Callable[..., Path]) -> None:
    path = write_cortexfile("version: 1\n")
    result = run(cortex_command, "start", "-f", str(path), "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "flag --host: server.host: refusing to serve on 0.0.0.0 without an API key" in result.stderr
    assert "allow_unauthenticated" in result.stderr
