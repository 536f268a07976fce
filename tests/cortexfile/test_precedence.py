"""defaults < format defaults < hardware recipe < Cortexfile < CORTEX_* env < CLI flags: one test per step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.loader import load

CONTAINER = ("docker", {"server.host": "0.0.0.0", "target.distro": "alpine"})


@pytest.fixture
def plain(write_cortexfile: Callable[..., Path]) -> Path:
    return write_cortexfile("version: 1\n")


def test_built_in_default(plain: Path) -> None:
    resolved = load(plain)
    assert resolved.config.server.host == "127.0.0.1"
    assert str(resolved.origin(("server", "host"))) == "default"


def test_format_defaults_beat_built_in_defaults(plain: Path) -> None:
    resolved = load(plain, format_defaults=CONTAINER)
    assert resolved.config.server.host == "0.0.0.0"
    assert str(resolved.origin(("server", "host"))) == "format docker default"


def test_recipe_beats_format_defaults(write_cortexfile: Callable[..., Path]) -> None:
    path = write_cortexfile("version: 1\ntarget:\n  hardware: raspberry-pi-5\n")
    resolved = load(path, format_defaults=CONTAINER)
    assert resolved.config.target.distro == "debian"
    assert resolved.config.target.architecture == "arm64"
    assert "recipes/hardware/raspberry-pi-5.yaml:4:13" in str(resolved.origin(("target", "distro")))


def test_file_beats_recipe(write_cortexfile: Callable[..., Path]) -> None:
    path = write_cortexfile("version: 1\ntarget:\n  hardware: raspberry-pi-5\n  distro: ubuntu\n")
    resolved = load(path)
    assert resolved.config.target.distro == "ubuntu"
    assert str(resolved.origin(("target", "distro"))) == f"{path}:4:11"


def test_file_beats_format_defaults(write_cortexfile: Callable[..., Path]) -> None:
    """A format's defaults are never pinned above the file: an edit of the file still wins."""
    path = write_cortexfile("version: 1\nserver:\n  host: 127.0.0.1\n")
    assert load(path, format_defaults=CONTAINER).config.server.host == "127.0.0.1"


def test_env_beats_file(write_cortexfile: Callable[..., Path]) -> None:
    path = write_cortexfile("version: 1\nserver:\n  port: 8000\n")
    resolved = load(path, environ={"CORTEX_SERVER__PORT": "9000"})
    assert resolved.config.server.port == 9000
    assert str(resolved.origin(("server", "port"))) == "env CORTEX_SERVER__PORT"


def test_flag_beats_env(write_cortexfile: Callable[..., Path]) -> None:
    path = write_cortexfile("version: 1\nserver:\n  port: 8000\n")
    resolved = load(path, environ={"CORTEX_SERVER__PORT": "9000"}, flags={"--port": "9100"})
    assert resolved.config.server.port == 9100
    assert str(resolved.origin(("server", "port"))) == "flag --port"


def test_env_selects_the_recipe(plain: Path) -> None:
    resolved = load(plain, environ={"CORTEX_TARGET__HARDWARE": "jetson-orin"})
    assert resolved.config.target.accelerator == "cuda"
    assert resolved.config.target.cuda_architectures == ["87"]


def test_env_lists_as_json_or_comma_separated(plain: Path) -> None:
    as_json = load(plain, environ={"CORTEX_SERVER__CORS__ORIGINS": '["http://a.b", "http://c.d:1"]'})
    as_csv = load(plain, environ={"CORTEX_SERVER__CORS__ORIGINS": "http://a.b, http://c.d:1"})
    assert as_json.config.server.cors.origins == as_csv.config.server.cors.origins == ["http://a.b", "http://c.d:1"]


@pytest.mark.parametrize(("text", "expected"), [("0", False), ("1", True), ("false", False), ("on", True)])
def test_boolean_flags_take_explicit_values(plain: Path, text: str, expected: bool) -> None:
    assert load(plain, flags={"--cors": text}).config.server.cors.enabled is expected
    assert load(plain, flags={"--verify-proxy": text}).config.network.proxy.verify_ssl is expected


def test_env_and_flag_errors_name_their_source(plain: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(plain, environ={"CORTEX_SERVER__PORT": "x"}, flags={"--host": "bad host!"})
    shown = [str(d) for d in caught.value.diagnostics]
    assert shown[0].startswith("env CORTEX_SERVER__PORT: server.port: input should be a valid integer")
    assert shown[1].startswith("flag --host: server.host: `bad host!` is not an IP address")


def test_unknown_env_setting_warns_with_hint(plain: Path) -> None:
    resolved = load(plain, environ={"CORTEX_SERVER__PROT": "1"})
    assert [str(w) for w in resolved.warnings] == [
        "env CORTEX_SERVER__PROT: warning: not a Cortex setting; ignored (did you mean CORTEX_SERVER__PORT?)"
    ]


def test_relative_paths_in_file_are_relative_to_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "appliance"
    folder.mkdir()
    path = folder / "Cortexfile.yaml"
    path.write_text("version: 1\nserver:\n  tls: {cert: tls/c.pem, key: tls/k.pem}\ndata:\n  path: data\n")
    resolved = load(path, cwd=tmp_path)
    assert resolved.config.server.tls.cert == folder / "tls/c.pem"
    assert resolved.config.data.path == folder / "data"


def test_relative_paths_in_flags_are_relative_to_the_working_directory(plain: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "elsewhere"
    resolved = load(plain, flags={"--datapath": "d"}, environ={"CORTEX_LOGS__PATH": "l"}, cwd=cwd)
    assert resolved.config.data.path == cwd / "d"
    assert resolved.config.logs.path == cwd / "l"


def test_model_preset_fills_unset_fields_only(write_cortexfile: Callable[..., Path]) -> None:
    path = write_cortexfile("version: 1\nmodels:\n  - id: g\n    preset: gemma3-270m-q4km\n    context_size: 512\n")
    model = load(path).config.models[0]
    assert (model.chat_format, model.context_size) == ("gemma", 512)
    assert model.source == str(path.parent / "gemma-3-270m-q4_k_m.gguf")


def test_architecture_aliases(write_cortexfile: Callable[..., Path]) -> None:
    path = write_cortexfile("version: 1\ntarget:\n  architecture: aarch64\n")
    assert load(path).config.target.architecture == "arm64"
    assert load(path, environ={"CORTEX_TARGET__ARCHITECTURE": "x86_64"}).config.target.architecture == "amd64"
