"""The container side of the CLI: `--defaults docker`, the missing-Cortexfile how-to, the
single-file mount warning (a real bind mount), and `cortex probe` against a real HTTP server."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from menlo_cortex.cortexfile import formats
from menlo_cortex.cortexfile.loader import load

from menlo_cortex.cli.defaults import mount_point_warning
from menlo_cortex.cli.probe import health_url

from .engine_parts import run_cortex


def test_config_show_with_docker_defaults_names_their_origin(tmp_path: Path) -> None:
    file = tmp_path / "Cortexfile.yaml"
    file.write_text("version: 1\n", encoding="utf-8")
    done = run_cortex(["config", "show", "-f", str(file), "--defaults", "docker", "--json"], {})
    assert done.returncode == 0, done.stderr
    shown = json.dumps(json.loads(done.stdout))
    assert "0.0.0.0" in shown
    assert "/var/lib/cortex" in shown
    assert "format docker" in shown


def test_the_file_still_wins_over_the_format_defaults(tmp_path: Path) -> None:
    file = tmp_path / "Cortexfile.yaml"
    file.write_text("version: 1\nserver:\n  host: 127.0.0.1\n", encoding="utf-8")
    config = load(file, format_defaults=formats.get("docker").loader_argument()).config
    assert config.server.host == "127.0.0.1"
    assert str(config.data.path) == "/var/lib/cortex"


def test_start_without_a_cortexfile_explains_how_to_mount_one(tmp_path: Path) -> None:
    missing = tmp_path / "etc-cortex" / "Cortexfile.yaml"
    done = run_cortex(["start", "--defaults", "docker", "-f", str(missing)], {})
    assert done.returncode == 2
    assert "no Cortexfile here" in done.stderr
    assert "mount a folder holding Cortexfile.yaml at /etc/cortex" in done.stderr


@pytest.fixture
def bind_mounted_file(tmp_path: Path) -> Iterator[Path]:
    source, target = tmp_path / "real.yaml", tmp_path / "Cortexfile.yaml"
    source.write_text("version: 1\n", encoding="utf-8")
    target.write_text("version: 1\n", encoding="utf-8")
    if subprocess.run(["mount", "--bind", str(source), str(target)], check=False).returncode != 0:
        pytest.skip("cannot bind-mount here (needs root and mount rights)")
    yield target
    subprocess.run(["umount", str(target)], check=True)


def test_single_file_mount_is_warned_about(bind_mounted_file: Path) -> None:
    warning = mount_point_warning(bind_mounted_file)
    assert warning is not None
    assert "single-file mount" in warning.message
    assert mount_point_warning(bind_mounted_file.parent / "real.yaml") is None


def test_cortexfile_in_a_plain_folder_is_not_warned_about(tmp_path: Path) -> None:
    file = tmp_path / "Cortexfile.yaml"
    file.write_text("version: 1\n", encoding="utf-8")
    assert mount_point_warning(file) is None


@pytest.mark.parametrize(
    ("server", "url"),
    [
        ("host: 0.0.0.0\n  port: 8080", "http://127.0.0.1:8080/health"),
        ("host: '::'\n  port: 9000", "http://[::1]:9000/health"),
        ("host: 10.1.2.3\n  tls: {cert: /c.pem, key: /k.pem}", "https://10.1.2.3:39281/health"),
    ],
)
def test_probe_follows_host_port_and_tls(tmp_path: Path, server: str, url: str) -> None:
    file = tmp_path / "Cortexfile.yaml"
    file.write_text(f"version: 1\nserver:\n  {server}\n", encoding="utf-8")
    assert health_url(load(file).config) == url


class Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_probe_exit_codes_against_a_real_server(tmp_path: Path, health_server: ThreadingHTTPServer) -> None:
    file = tmp_path / "Cortexfile.yaml"
    file.write_text(f"version: 1\nserver:\n  port: {health_server.server_address[1]}\n", encoding="utf-8")
    assert run_cortex(["probe", "-f", str(file)], {}).returncode == 0
    Health.status = 503
    try:
        failed = run_cortex(["probe", "-f", str(file)], {})
    finally:
        Health.status = 200
    assert failed.returncode == 1
    assert "HTTP 503" in failed.stderr


def test_probe_reports_a_server_that_is_down(tmp_path: Path) -> None:
    file = tmp_path / "Cortexfile.yaml"
    file.write_text("version: 1\nserver:\n  port: 9\n", encoding="utf-8")
    done = run_cortex(["probe", "-f", str(file), "--timeout", "2"], {})
    assert done.returncode == 1
    assert "127.0.0.1:9/health" in done.stderr
