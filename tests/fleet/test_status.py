"""`cortex fleet status` against real devices: a keyed HTTPS `cortex start` with the real model, asked with the
right key, a wrong one, none, and without its CA; a port nothing listens on; and devices that answer as hostile
servers would. Every device is listed; no escape sequence, no key and no oversized text reaches the output."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from menlo_cortex import __version__
from tests.conftest import find_free_port
from tests.runtime.cortex_server import MODEL_ID, CortexServer, launch
from tests.runtime.test_server_security import make_self_signed

from .hostile_device import hostile_device

KEY = "fleet-key-0123456789"
HOSTILE = ("html", "escape", "huge", "nested", "shapes", "redirect", "slow", "rolled-back")


@pytest.fixture(scope="module")
def device(
    tmp_path_factory: pytest.TempPathFactory, cortex_command: list[str], test_data_dir: Path
) -> Iterator[tuple[CortexServer, Path]]:
    folder = tmp_path_factory.mktemp("device")
    cert, key = make_self_signed(folder)
    body = f"server:\n  tls: {{cert: {cert}, key: {key}}}\n  auth:\n    api_keys: ['${{env:DEVICE_KEY}}']\n"
    server = launch(folder, cortex_command, test_data_dir, body, env={"DEVICE_KEY": KEY}, ca_file=cert)
    try:
        server.wait_ready()
        yield server, cert
    finally:
        server.terminate()


def status(cortex: list[str], fleet: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "FLEET_KEY": KEY, "WRONG_KEY": "not-the-key"}
    environ.pop("UNSET_KEY", None)
    command = [*cortex, "fleet", "status", "-f", str(fleet), *args]
    return subprocess.run(command, capture_output=True, text=True, env=environ, timeout=120, check=False)


def test_every_device_is_listed_with_its_state(
    device: tuple[CortexServer, Path], tmp_path: Path, cortex_command: list[str]
) -> None:
    server, cert = device
    with hostile_device() as hostile:
        entries = [
            f"- {{name: good, url: '{server.base_url}', api_key: '${{env:FLEET_KEY}}', ca_certificate: {cert}}}",
            f"- {{name: wrong-key, url: '{server.base_url}', api_key: '${{env:WRONG_KEY}}', ca_certificate: {cert}}}",
            f"- {{name: unset-key, url: '{server.base_url}', api_key: '${{env:UNSET_KEY}}', ca_certificate: {cert}}}",
            f"- {{name: untrusted, url: '{server.base_url}', api_key: '${{env:FLEET_KEY}}'}}",
            f"- {{name: down, url: 'http://127.0.0.1:{find_free_port()}'}}",
            *(f"- {{name: {name}, url: '{hostile}/{name}'}}" for name in HOSTILE),
        ]
        fleet = tmp_path / "fleet.yaml"
        fleet.write_text("timeout_s: 2\ndevices:\n" + textwrap.indent("\n".join(entries), "  ") + "\n")
        listed = status(cortex_command, fleet, "--json")
        table = status(cortex_command, fleet)
    assert listed.returncode == 1, listed.stderr
    by_name = {entry["name"]: entry for entry in json.loads(listed.stdout)}
    assert list(by_name) == ["good", "wrong-key", "unset-key", "untrusted", "down", *HOSTILE]
    good = by_name["good"]
    assert (good["state"], good["runtime_version"], good["errors"]) == ("ready", __version__, [])
    assert good["models"] == {MODEL_ID: "ready"}
    assert isinstance(good["generation"], int)
    assert by_name["wrong-key"]["state"] == "key refused"
    assert by_name["wrong-key"]["runtime_version"] is None  # the version is for key holders only
    assert by_name["unset-key"]["state"] == "no key"
    assert by_name["unset-key"]["errors"] == ["asked without a key: environment variable UNSET_KEY is not set"]
    assert by_name["untrusted"]["errors"] == ["its TLS certificate is not trusted (ca_certificate)"]
    assert by_name["down"]["errors"] == ["connection refused"]
    assert by_name["html"]["errors"] == ["/html/health: the answer is not JSON"]
    rolled_back = by_name["rolled-back"]
    assert (rolled_back["version"], rolled_back["slot"]) == ("1.4.3", "b")
    (error,) = rolled_back["errors"]
    assert error.startswith("update: not kept")
    assert error.endswith(" (version 1.4.4)")
    assert by_name["nested"]["errors"] == ["/nested/health: the answer is not JSON"]
    assert by_name["huge"]["errors"] == ["/huge/health: an answer too large or too slow"]
    assert by_name["slow"]["errors"] == ["/slow/health: an answer too large or too slow"]
    assert by_name["redirect"]["errors"] == ["/redirect/health: answered HTTP 302"]
    assert by_name["shapes"]["errors"] == ["/ready: the answer is not a Cortex device's"]
    assert by_name["escape"]["state"] == "ready"
    assert len(by_name["escape"]["models"]) == 1  # 500 entries of one id: listed once
    for output in (listed.stdout, table.stdout, table.stderr):
        assert not {"\x1b", "\x07"} & set(output)
        assert KEY not in output
    assert max(len(line) for line in table.stdout.splitlines()) < 1000
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[1:]}
    assert rows["good"].split()[1:5] == ["ready", "-", "-", __version__]  # no image version or slot: not a device
    assert f"{MODEL_ID} (ready)" in rows["good"]


def test_a_device_that_never_finishes_answering_is_listed_as_too_slow(
    tmp_path: Path, cortex_command: list[str]
) -> None:
    """Headers dripped a byte at a time (each read well inside the timeout) hold nothing up: the device is
    listed once its budget (five timeouts) is spent, and a non-ASCII key is a reason, not a crash."""
    with hostile_device() as hostile:
        fleet = tmp_path / "fleet.yaml"
        fleet.write_text(f"timeout_s: 0.5\napi_key: 'kéy'\ndevices:\n  - {{name: drip, url: '{hostile}/drip'}}\n"
                         f"  - {{name: down, url: 'http://127.0.0.1:{find_free_port()}'}}\n")  # fmt: skip
        started = time.monotonic()
        done = status(cortex_command, fleet, "--json")
    assert time.monotonic() - started < 30  # the drip alone would take 44 s
    drip, down = json.loads(done.stdout)
    assert drip["state"] == "too slow"
    assert drip["errors"] == ["no whole answer within 2.5 s (timeout_s x 5)"]
    ascii_only = "asked without a key: the API key holds characters other than ASCII: no HTTP header can carry it"
    assert down["errors"] == [ascii_only, "connection refused"]


def test_a_ready_fleet_exits_zero(device: tuple[CortexServer, Path], tmp_path: Path, cortex_command: list[str]) -> None:
    server, cert = device
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"api_key: '${{env:FLEET_KEY}}'\ndevices:\n  - {{name: a, url: '{server.base_url}', "
                     f"ca_certificate: {cert}}}\n")  # fmt: skip
    done = status(cortex_command, fleet)
    assert done.returncode == 0, done.stdout + done.stderr
    heading = ["DEVICE", "STATE", "VERSION", "SLOT", "RUNTIME", "COMMIT", "GEN", "MODELS", "LAST", "ERRORS"]
    assert done.stdout.splitlines()[0].split() == heading
